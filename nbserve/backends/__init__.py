"""Serving platforms behind one interface (``nbserve.backends.base.Backend``)."""

from __future__ import annotations

from nbserve.backends.base import Backend
from nbserve.errors import SpecError

__all__ = ["Backend", "get_backend"]

_cache: dict[tuple[str, str | None], Backend] = {}


def get_backend(kind: str = "ray", address: str | None = None) -> Backend:
    """The backend object for ``kind`` (one per cluster address, reused across cells)."""
    key = (kind, address)
    if key not in _cache:
        if kind == "ray":
            from nbserve.backends.ray import RayBackend

            _cache[key] = RayBackend(address)
        elif kind == "modal":
            from nbserve.backends.modal.backend import ModalBackend

            _cache[key] = ModalBackend()
        else:
            raise SpecError("--backend", kind, "unknown backend", "Use --backend ray.")
    return _cache[key]
