"""``%serve bench`` / ``nbserve bench``: load-test an endpoint and show what the clients saw.

``loadgen`` sends the requests, ``payload`` turns ``--payload`` into inputs, ``report``
renders the figures, ``run`` ties them to a live view (a widget in notebooks, lines on a
terminal).
"""
