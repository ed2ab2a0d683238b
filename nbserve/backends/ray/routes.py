"""Wait until the embedded cluster's HAProxy routes an endpoint as Serve's controller now does.

With the HAProxy ingress, Serve's controller sends each app's running replicas to the HAProxy
manager (the proxy actor on the node), which writes HAProxy's config and reloads it: after a
0.1 s coalescing window, a new HAProxy process, and a poll until it answers (0.5 s steps).
A cell reloaded in place leaves that list while Serve reconfigures its replicas (they are
UPDATING, not RUNNING) and comes back after, so every hot reload reloads HAProxy twice, and
the second one finished about 1.1 s after Serve called the endpoint running (measured here:
the deploy returned at 0.56 s, HAProxy ran the replica again at 1.65 s). In between, requests
go through Serve's fallback proxy, the backend's only server; in one CI run the first request
after a reload got an error instead of its answer. A deploy therefore returns only once HAProxy
runs the controller's latest routes for the endpoint.

What is read is Ray 2.60's (the controller's ``get_target_groups`` and the manager's update
state, through Ray's public ``__ray_call__``); on a Ray without them nothing is waited for.
"""

from __future__ import annotations

import time
from typing import Any

import ray

__all__ = ["ROUTES_TIMEOUT_S", "routes_settled", "wait_for_routes"]

# A bound, not an expectation: two reloads take about 1.2 s here. Past it the deploy returns
# anyway; requests still reach the replicas through Serve's fallback proxy meanwhile.
ROUTES_TIMEOUT_S = 15.0
POLL_S = 0.05


def _manager_view(manager: Any, app_name: str) -> tuple[bool, list[Any]] | None:
    """Runs inside the HAProxy manager: whether an update is waiting or being applied, and the
    app's routes it last received (None on a manager that keeps neither)."""
    try:
        task = manager._coalesce_task
        busy = manager._update_pending or (task is not None and not task.done())
        groups = [group for group in manager._target_groups or [] if group.app_name == app_name]
    except AttributeError:
        return None
    return busy, groups


def _head_manager() -> tuple[Any, Any] | None:
    """Serve's controller and the proxy actor on this node (the embedded cluster's head)."""
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return None
    controller = client._controller
    proxies = ray.get(controller.get_proxies.remote(), timeout=10)
    manager = proxies.get(ray.get_runtime_context().get_node_id())
    return (controller, manager) if manager is not None else None


def routes_settled(app_name: str) -> bool | None:
    """Whether HAProxy now runs the routes the controller has for ``app_name`` and no update is
    on its way (None: this Ray keeps no such state, or Serve runs no HAProxy here)."""
    found = _head_manager()
    if found is None:
        return None
    controller, manager = found
    return _settled(controller, manager, app_name)


def _settled(controller: Any, manager: Any, app_name: str) -> bool | None:
    if not hasattr(controller, "get_target_groups"):  # another Ray's controller
        return None
    wanted = ray.get(controller.get_target_groups.remote(app_name=app_name, from_proxy_manager=True), timeout=10)
    view = ray.get(manager.__ray_call__.remote(_manager_view, app_name), timeout=10)
    if view is None:
        return None
    busy, having = view
    return not busy and having == wanted


def wait_for_routes(app_name: str, timeout_s: float = ROUTES_TIMEOUT_S) -> bool:
    """Return once HAProxy routes ``app_name`` as the controller does: True; False when that did
    not happen within ``timeout_s`` or this Ray keeps no such state (the deploy goes on either
    way). Whether each server is healthy stays HAProxy's own check; this waits for the routes."""
    deadline = time.monotonic() + timeout_s
    try:
        found = _head_manager()
        while found is not None:
            settled = _settled(*found, app_name)
            if settled is None or time.monotonic() > deadline:
                return False
            if settled:
                return True
            time.sleep(POLL_S)
    except ray.exceptions.RayError:  # the controller or the manager restarting: nothing to wait on
        pass
    return False
