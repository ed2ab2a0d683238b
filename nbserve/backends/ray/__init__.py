"""The Ray Serve backend (the embedded local cluster, or any existing cluster).

``options`` and ``state`` are plain Python; ``backend`` (imported on first use) imports Ray.
"""
