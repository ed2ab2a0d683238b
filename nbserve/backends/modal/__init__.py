"""The Modal backend: a cell becomes a Modal app (a GPU class plus a web function).

``options`` is plain Python; ``app`` and ``backend`` import Modal, on first use only.
"""
