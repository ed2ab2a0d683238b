"""The cell as Serve's user_config, and the code version that decides reload or restart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbserve
from nbserve._cell import analyze_cell, make_bundle
from nbserve._flags import build_spec
from nbserve.backends.ray.replica import (
    REPLICA_SOURCES,
    cell_config,
    code_version_of,
    config_version,
    read_cell,
    read_extra,
    replica_code_version,
)
from nbserve.backends.ray.state import code_version_for

SOURCE = "SCALE = 3\ndef f(xs):\n    return [x * SCALE for x in xs]\n"
PACKAGE = Path(nbserve.__file__).parent


def test_cell_config_is_json_and_gives_the_cell_back() -> None:
    bundle = make_bundle("cfg", SOURCE, analyze_cell(SOURCE), batched=True, namespace={"unused": 1})
    spec = build_spec(name="cfg", max_batch_size=8, replicas="1:3")
    config = cell_config(bundle, spec.runtime_options(), 1234.5, "nbserve-replica-abc", extra=spec)
    assert json.loads(json.dumps(config)) == config  # Serve requires JSON
    assert read_cell(config) == (bundle, spec.runtime_options())
    assert read_extra(config) == spec
    assert config_version(config) == (1234.5, "nbserve-replica-abc")
    # A replica's description is its config, stamped by the replica: the same reader.
    assert config_version({**config, "deployed_at": 99.0, "handler": "f"}) == (99.0, "nbserve-replica-abc")
    # A config nbserve did not write names no version.
    assert config_version(None) is None
    assert config_version({"x": 1}) is None


def test_the_code_version_is_stable() -> None:
    version = replica_code_version()
    assert version == replica_code_version() == code_version_of(PACKAGE)
    assert version.startswith("nbserve-replica-")


def test_the_code_version_follows_the_replicas_code_only(tmp_path: Path) -> None:
    """Editing the sidebar's server leaves replicas to reload in place; editing the runtime does not."""
    copy = tmp_path / "nbserve"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "labextension"))
    before = code_version_of(copy)
    assert before == replica_code_version()
    for outside in ("server/handlers.py", "_magics.py", "_dashboard/render.py", "backends/ray/backend.py"):
        with (copy / outside).open("a") as file:
            file.write("\n# an edit outside the replica\n")
    assert code_version_of(copy) == before
    with (copy / "runtime/batcher.py").open("a") as file:
        file.write("\n# an edit inside the replica\n")
    assert code_version_of(copy) != before
    assert any(pattern.startswith("runtime/") for pattern in REPLICA_SOURCES)


def test_a_rerun_keeps_the_running_code_version_unless_asked_to_restart() -> None:
    current = replica_code_version()
    assert code_version_for(None, current, restart=False) == current
    restarted = code_version_for(None, current, restart=True)
    assert restarted.startswith(current) and restarted != current
    # After a --restart, plain re-runs reload in those processes: the version stays.
    assert code_version_for(restarted, current, restart=False) == restarted
    # Replicas of another nbserve are replaced.
    assert code_version_for("nbserve-replica-0old", current, restart=False) == current


def test_a_waiting_request_is_matched_to_a_replica_by_its_whole_shape() -> None:
    from nbserve.backends.ray.state import same_shape

    demand = {"CPU": 0.1, "GPU": 0.25}
    assert same_shape({"GPU": 0.25, "CPU": 0.1}, demand)  # as Ray reports it, in any order
    assert same_shape({"GPU": 0.25, "CPU": 0.1, "memory": 0.0}, demand)  # zeros say nothing
    assert not same_shape({"CPU": 0.1}, demand)  # another deployment's shape
    assert not same_shape({"CPU": 0.1, "GPU": 0.5}, demand)
    assert not same_shape({"CPU": 0.1, "GPU": 0.25, "memory": 2.0**30}, demand)
