"""Serving platforms behind one interface (``nbserve.backends.base.Backend``).

Each backend is a subpackage with a pure ``options`` module (its translation of a
``ServeSpec`` and the rules only it has, checked when a spec is built) and the backend
itself, imported only when it is first used: Ray and Modal are heavy imports.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from nbserve._spec import ServeSpec
from nbserve.backends.local import options as local_options
from nbserve.backends.modal import options as modal_options
from nbserve.backends.ray import options as ray_options

if TYPE_CHECKING:
    from nbserve.backends.base import Backend

__all__ = ["check_spec", "get_backend"]

_CHECKS = {"ray": ray_options.check, "modal": modal_options.check, "local": local_options.check}
_cache: dict[tuple[str, str | None], Backend] = {}
# One backend per key, even when two threads ask at once (%load_ext's prestart and a cell):
# two RayBackends would both call ray.init.
_cache_lock = threading.Lock()


def check_spec(spec: ServeSpec) -> None:
    """Raise ``SpecError`` for what ``spec.backend`` cannot do (before anything is deployed)."""
    _CHECKS[spec.backend](spec)


def get_backend(kind: str = "ray", address: str | None = None) -> Backend:
    """The backend object for ``kind`` (one per cluster address, reused across cells).

    For Ray, ``address`` is the cluster a line names; without one, ``RAY_ADDRESS``, else
    nbserve's embedded cluster.
    """
    if kind == "ray":
        address = ray_options.cluster_address(address, os.environ)
    key = (kind, address if kind == "ray" else None)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _make_backend(kind, key[1])
        return _cache[key]


def _make_backend(kind: str, address: str | None) -> Backend:
    if kind == "ray":
        from nbserve.backends.ray.backend import RayBackend

        return RayBackend(address)
    if kind == "modal":
        from nbserve.backends.modal.backend import ModalBackend

        return ModalBackend()
    if kind == "local":
        from nbserve.backends.local.backend import LocalBackend

        return LocalBackend()
    from nbserve._errors import SpecError

    raise SpecError("--backend", kind, "unknown backend", "Use --backend ray, modal or local.")
