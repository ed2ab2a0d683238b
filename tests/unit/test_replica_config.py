"""The cell as Serve's user_config, and the code version that decides reload or restart."""

from __future__ import annotations

import json

from nbserve.backends.ray.backend import _code_version
from nbserve.backends.ray.replica import cell_config, read_cell_config, replica_code_version
from nbserve.cell import analyze_cell, make_bundle
from nbserve.spec import build_spec

SOURCE = "SCALE = 3\ndef f(xs):\n    return [x * SCALE for x in xs]\n"


def test_cell_config_is_json_and_gives_the_cell_back() -> None:
    bundle = make_bundle("cfg", SOURCE, analyze_cell(SOURCE), batched=True, namespace={"unused": 1})
    spec = build_spec(name="cfg", max_batch_size=8, replicas="1:3")
    config = cell_config(bundle, spec, 1234.5, "nbserve-0.1.0-abc")
    assert json.loads(json.dumps(config)) == config  # Serve requires JSON
    assert read_cell_config(config) == (bundle, spec, 1234.5, "nbserve-0.1.0-abc")


def test_the_code_version_is_stable_and_names_the_release() -> None:
    import nbserve

    version = replica_code_version()
    assert version == replica_code_version()
    assert version.startswith(f"nbserve-{nbserve.__version__}-")


def test_a_rerun_keeps_the_running_code_version_unless_asked_to_restart() -> None:
    current = replica_code_version()
    assert _code_version(None, restart=False) == current
    restarted = _code_version(None, restart=True)
    assert restarted.startswith(current) and restarted != current
    # After a --restart, plain re-runs reload in those processes: the version stays.
    assert _code_version({"code_version": restarted}, restart=False) == restarted
    # Replicas of another nbserve are replaced.
    assert _code_version({"code_version": "nbserve-0.0.1-old"}, restart=False) == current
