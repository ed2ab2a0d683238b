"""One deploy of an endpoint at a time, across every kernel that reaches the cluster.

Two kernels deploying the same name at once would each see their own success while the last
writer silently won. A deploy first takes the name's lease in the cluster's key-value store
(an atomic put-if-absent); a second deploy waits for it, saying whose it is, and then runs,
so the later cell is the one that serves and both kernels know it. A lease outlives no
crash for long: it names its holder's deadline, after which another deploy may take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator

from ray.experimental import internal_kv

__all__ = ["deploy_lease"]

NAMESPACE = "nbserve"
POLL_S = 0.5


def _key(name: str) -> str:
    return f"deploying:{name}"


@contextlib.contextmanager
def deploy_lease(name: str, hold_s: float, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the lease on deploying ``name`` for at most ``hold_s`` seconds; wait while another holds it.

    ``on_wait`` is told who holds it, for the progress line.
    """
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "until": time.time() + hold_s})
    while internal_kv._internal_kv_put(_key(name), mine, overwrite=False, namespace=NAMESPACE):
        held = internal_kv._internal_kv_get(_key(name), namespace=NAMESPACE)
        holder = json.loads(held) if held else None
        if holder is None or holder["until"] < time.time():  # released meanwhile, or its holder died
            internal_kv._internal_kv_del(_key(name), namespace=NAMESPACE)
            continue
        on_wait(f"waiting: another deploy of {name} runs (process {holder['pid']} on {holder['host']})")
        time.sleep(POLL_S)
    try:
        yield
    finally:
        if internal_kv._internal_kv_get(_key(name), namespace=NAMESPACE) == mine.encode():
            internal_kv._internal_kv_del(_key(name), namespace=NAMESPACE)
