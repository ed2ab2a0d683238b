"""Helpers shared by the tests (and the benchmark suite), in one place:

- ``helpers``: waiting on a condition with a deadline, the CLI as a user runs it, polling HTTP
  clients, free ports, a sample ``EndpointInfo``;
- ``kernels``: a real IPython kernel driven over ZMQ, as Jupyter drives it;
- ``lab``: a JupyterLab server and a page of it in Chromium (the browser tests).
"""
