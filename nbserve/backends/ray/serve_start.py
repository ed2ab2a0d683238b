"""Start Ray Serve on a connected cluster without waiting for its HTTP proxies on the way.

``serve.start`` creates Serve's controller, then blocks until the controller's proxies answer
(with the HAProxy ingress: the actor that runs HAProxy and Serve's fallback proxy, each a
fresh Python worker). On a cold first deploy that wait was 2.4 s during which no replica could
start. Here the controller is created the same way, the proxies' readiness is kept, and a
deploy waits for it only once its replicas run (``wait_for_ingress``), so the first replica's
process, imports and model load overlap the proxies' start: a cold deploy of the quickstart
went from 20.3 to 18.4 s (Ray's dashboard off; medians of 3 alternating runs, deploy_times.py).

The steps are Ray 2.60's own (``ray.serve._private.api``); where a Ray lacks them, Serve's
public ``serve.start`` runs and nothing is left to wait for.
"""

from __future__ import annotations

import threading
from typing import Any

from nbserve._errors import ClusterError

__all__ = ["start_serve", "wait_for_ingress"]

# Ray's own limit for its proxies to start (ray.serve._private.constants.HTTP_PROXY_TIMEOUT).
PROXY_TIMEOUT_S = 60.0

_lock = threading.Lock()
_starting: list[Any] = []  # readiness refs of the proxies a fresh controller is starting


def start_serve(http_options: dict[str, Any]) -> None:
    """Make sure Serve runs on the connected cluster; a controller started here does not wait
    for its proxies (``wait_for_ingress`` does)."""
    from ray import serve  # Ray is imported where it is used: see cluster.start_embedded

    with _lock:
        _starting.clear()  # refs of an earlier connection mean nothing on this one
    try:
        from ray.serve._private.api import _coerce_controller_options, _create_controller_and_proxy_refs
        from ray.serve._private.client import ServeControllerClient
        from ray.serve.context import _get_global_client, _set_global_client

        running = _get_global_client(raise_if_no_controller_running=False) is not None
    except (ImportError, TypeError):  # another Ray: its public start, which waits
        running = True
    if running:  # Serve runs already (this only checks the options), or another Ray
        serve.start(http_options=http_options)
        return
    controller, ready = _create_controller_and_proxy_refs(
        http_options, None, None, None, _coerce_controller_options(None), None
    )
    _set_global_client(ServeControllerClient(controller))
    with _lock:
        _starting[:] = ready


def wait_for_ingress() -> None:
    """Return once the proxies of a Serve started by this process answer (at once when none
    is starting), so that an endpoint's URL answers when its deploy returns."""
    with _lock:
        ready = list(_starting)
    if not ready:
        return
    import ray

    try:
        ray.get(ready, timeout=PROXY_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError:
        problem = f"did not start within {PROXY_TIMEOUT_S:.0f} s"
    except ray.exceptions.RayError as exc:
        problem = f"failed to start ({type(exc).__name__}: {exc})"
    else:
        problem = ""
    if problem:
        raise ClusterError(
            f"Ray Serve's HTTP proxy {problem}, so the endpoint could not be reached over HTTP and the "
            "deploy was called off. Its logs are in the cluster's session folder (logs/serve); "
            "`nbserve cluster stop`, then deploy again."
        )
    with _lock:
        if _starting == ready:
            _starting.clear()
