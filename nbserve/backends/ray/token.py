"""The cluster's endpoint token, kept in the cluster (Ray's internal key-value store).

Every kernel that reaches a cluster finds its token there, and so do the replicas: they read
it again every ``REFRESH_S`` seconds, so a rotation reaches running endpoints without a
redeploy. Only processes that hold the cluster's own credentials (Ray's token auth) can read
the store. For the embedded cluster the kernel puts this user's token (``nbserve._tokens``)
there when it connects.
"""

from __future__ import annotations

import threading
import time

from ray.experimental import internal_kv

__all__ = ["REFRESH_S", "ClusterToken", "get_token", "put_token"]

NAMESPACE = "nbserve"
KEY = "endpoint_token"
REFRESH_S = 2.0


def get_token() -> str | None:
    """The cluster's token, or ``None`` while it has none (needs a connected driver or worker)."""
    value = internal_kv._internal_kv_get(KEY, namespace=NAMESPACE)
    return value.decode() if value else None


def put_token(token: str, *, replace: bool = True) -> str:
    """Store ``token`` as the cluster's (``replace=False``: only where it has none); return the one kept."""
    internal_kv._internal_kv_put(KEY, token.encode(), overwrite=replace, namespace=NAMESPACE)
    return get_token() or token


class ClusterToken:
    """A replica's view of the token: read at most every ``REFRESH_S`` seconds, off the request path.

    The first call reads it; later calls return what was last read and, when that is older
    than the interval, start a read in the background. A store that cannot be reached keeps
    the last token.
    """

    def __init__(self, refresh_s: float = REFRESH_S) -> None:
        self._refresh_s = refresh_s
        self._token: str | None = None
        self._read_at = 0.0
        self._reading = threading.Lock()

    def __call__(self) -> str | None:
        if self._read_at == 0.0:
            self._read()
        elif time.monotonic() - self._read_at > self._refresh_s and not self._reading.locked():
            threading.Thread(target=self._read, name="nbserve-token", daemon=True).start()
        return self._token

    def _read(self) -> None:
        if not self._reading.acquire(blocking=False):
            return
        try:
            self._token = get_token() or self._token
        except Exception:  # noqa: BLE001 - a store out of reach for a moment: keep the last token
            pass
        finally:
            self._read_at = time.monotonic()
            self._reading.release()
