"""The Ray Serve backend (embedded local cluster or any existing cluster)."""

from nbserve.backends.ray.backend import RayBackend

__all__ = ["RayBackend"]
