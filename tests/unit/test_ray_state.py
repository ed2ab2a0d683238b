"""Serve's view of an application read into nbserve's terms, from the controller's details.

The dict's shape is Serve's own (tests/integration/test_ray_backend.py compares the reading with
``serve.status()`` on a live cluster); these cases are the ones a live cluster rarely shows.
"""

from __future__ import annotations

from enum import Enum

from nbserve.backends.ray import state


class _State(str, Enum):  # Serve's enums are str enums; the dict may hold them or their values
    RUNNING = "RUNNING"


def details(**apps: object) -> dict[str, object]:
    return {"applications": apps, "proxies": {"node-a": {"status": "HEALTHY"}, "node-b": {"status": "DRAINING"}}}


def test_replica_states_are_counted_across_deployments() -> None:
    view = state.serve_view(
        details(
            echo={
                "status": "RUNNING",
                "message": "",
                "last_deployed_time_s": 12.5,
                "deployments": {
                    "nbserve_cell": {
                        "status": _State.RUNNING,
                        "message": "",
                        "replicas": [{"state": _State.RUNNING}, {"state": "RUNNING"}, {"state": "STARTING"}],
                    },
                    "helper": {"status": "UPDATING", "message": "rolling", "replicas": [{"state": "RECOVERING"}]},
                },
            }
        )
    )
    app = view.applications["echo"]
    assert (app.status, app.last_deployed_time_s) == ("RUNNING", 12.5)
    assert app.deployments["nbserve_cell"].replica_states == {"RUNNING": 2, "STARTING": 1}
    counts = state.replica_counts(app, target=3)
    assert (counts.running, counts.starting, counts.recovering, counts.target) == (2, 1, 1, 3)
    assert state.messages(app) == "rolling"


def test_an_application_without_replicas_or_messages_reads_as_empty() -> None:
    view = state.serve_view(
        details(gone={"status": "DELETING", "deployments": {"nbserve_cell": {"status": "HEALTHY"}}})
    )
    app = view.applications["gone"]
    assert (app.message, app.last_deployed_time_s) == ("", 0.0)
    assert app.deployments["nbserve_cell"].replica_states == {}
    assert state.replica_counts(app, target=1).running == 0


def test_a_proxy_that_is_not_healthy_is_named_and_no_serve_means_nothing() -> None:
    view = state.serve_view(details())
    assert state.proxy_trouble(view.proxies) == (
        "the HTTP proxy is draining on node node-b: HTTP requests may fail until it is back (calls by handle go on)"
    )
    empty = state.serve_view({})
    assert (empty.applications, empty.proxies) == ({}, {})
    assert state.serve_view({"applications": None, "proxies": None}).proxies == {}


def _cell_app(app_status: str, deployment_status: str, user_config: object) -> state.ApplicationView:
    deployment = {"status": deployment_status, "deployment_config": {"user_config": user_config}}
    view = state.serve_view(details(echo={"status": app_status, "deployments": {"nbserve_cell": deployment}}))
    return view.applications["echo"]


def test_a_deployment_is_settled_while_serve_shows_it_running_or_scaling() -> None:
    stamped = {"cell": "...", "deployed_at": 1700000000.25, "code_version": "abc"}
    view = state.settled(_cell_app("RUNNING", "HEALTHY", stamped), "nbserve_cell")
    assert view is not None and view.user_config == stamped  # the config that names the version
    # Autoscaling starts and stops replicas of the same version: still settled.
    assert state.settled(_cell_app("RUNNING", "UPSCALING", stamped), "nbserve_cell") is not None
    assert state.settled(_cell_app("RUNNING", "DOWNSCALING", stamped), "nbserve_cell") is not None
    # A rollout, a failure or a deploy in progress: replicas may serve another version.
    assert state.settled(_cell_app("RUNNING", "UPDATING", stamped), "nbserve_cell") is None
    assert state.settled(_cell_app("DEPLOYING", "HEALTHY", stamped), "nbserve_cell") is None
    assert state.settled(_cell_app("RUNNING", "UNHEALTHY", stamped), "nbserve_cell") is None
    # No such deployment.
    assert state.settled(_cell_app("RUNNING", "HEALTHY", stamped), "other") is None
