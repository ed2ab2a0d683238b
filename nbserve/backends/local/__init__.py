"""The in-process backend: the cell runs in this process, behind the same interface as Ray's.

``%%serve NAME --backend local`` tries a cell without any cluster (setup in the kernel, an
HTTP endpoint on loopback), and the tests use it to check the magics, the verbs, ``Endpoint``
and the dashboard in milliseconds.
"""
