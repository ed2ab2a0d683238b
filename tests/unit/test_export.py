"""Exported files: valid Python, a RayService that KubeRay and Ray Serve's schema accept."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from nbserve._cell import analyze_cell, make_bundle
from nbserve._errors import SpecError
from nbserve._export import export_cell, render_ray_module, render_rayservice
from nbserve._flags import build_spec
from nbserve.backends.ray.options import SHED_HEADROOM

SOURCE = 'import numpy as np\nLABEL = "v"\n\ndef shout(items):\n    return [PREFIX + x.upper() for x in items]\n'


def bundle_for(name: str, batched: bool = True):  # type: ignore[no-untyped-def]
    info = analyze_cell(SOURCE, batched=batched)
    return make_bundle(name, SOURCE, info, batched=batched, namespace={"PREFIX": ">"})


def test_ray_module_keeps_the_cell_and_shows_the_mapping() -> None:
    spec = build_spec(name="shout", gpu="0.25", replicas="1:4", max_batch_size=16, env=["A=1"])
    text = render_ray_module(spec, bundle_for("shout"))
    ast.parse(text)  # valid Python
    assert SOURCE in text  # the cell's source, intact
    assert "NOTEBOOK_VALUES = {\n    'PREFIX': '>',\n}" in text
    assert "# %%serve shout --max-batch-size 16 --gpu 0.25 --replicas 1:4 --env A=1" in text
    assert "'num_gpus': 0.25" in text and f"'max_ongoing_requests': {16 + 32 + SHED_HEADROOM}" in text
    assert "serve run shout_app:app --name shout --route-prefix /shout" in text


def test_cell_with_triple_quotes_and_backslashes_survives_export() -> None:
    source = 'DOC = """a \\n b"""\ndef f(xs):\n    return [DOC for _ in xs]\n'
    bundle = make_bundle("f", source, analyze_cell(source), batched=True)
    namespace: dict[str, object] = {}
    exec(render_ray_module(build_spec(name="f"), bundle).split("DEPLOYMENT_OPTIONS")[0], namespace)
    assert namespace["CELL_SOURCE"] == source


def test_rayservice_manifest_has_kuberay_fields_and_a_valid_serve_config() -> None:
    spec = build_spec(
        name="shout_v2", gpu="0.25", replicas="1:4", cpus=0.5, pip=["numpy"], env=["A=1"], scaledown_window=120
    )
    manifest = yaml.safe_load(render_rayservice(spec, "shout_v2_app"))
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == "RayService"
    assert manifest["metadata"]["name"] == "shout-v2"  # Kubernetes names allow no underscore
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["image"].startswith("rayproject/ray:")
    workers = cluster["workerGroupSpecs"][0]
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert cluster["enableInTreeAutoscaling"] is True

    config = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    ServeDeploySchema.parse_obj(config)  # Ray Serve's own schema accepts it
    app = config["applications"][0]
    assert app["import_path"] == "shout_v2_app:app"
    assert app["route_prefix"] == "/shout_v2"
    assert app["runtime_env"]["pip"][1:] == ["numpy"]
    assert app["runtime_env"]["env_vars"] == {"A": "1"}
    deployment = app["deployments"][0]
    assert deployment["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 32.0,
        "downscale_delay_s": 120.0,
    }
    assert deployment["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.25}


def test_fixed_replicas_map_to_num_replicas() -> None:
    config = yaml.safe_load(
        yaml.safe_load(render_rayservice(build_spec(name="e", replicas="3"), "e_app"))["spec"]["serveConfigV2"]
    )
    ServeDeploySchema.parse_obj(config)
    assert config["applications"][0]["deployments"][0]["num_replicas"] == 3


def test_export_writes_the_files_of_each_target(tmp_path: Path) -> None:
    spec = build_spec(name="shout")
    assert [p.name for p in export_cell(spec, bundle_for("shout"), "ray", tmp_path)] == ["shout_app.py"]
    kuberay = export_cell(spec, bundle_for("shout"), "kuberay", tmp_path / "k8s")
    assert [p.name for p in kuberay] == ["shout_app.py", "shout_rayservice.yaml"]
    with pytest.raises(ValueError, match="unknown export target"):
        export_cell(spec, bundle_for("shout"), "docker", tmp_path)  # type: ignore[arg-type]


def test_modal_export_refuses_a_fractional_gpu(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="Modal gives each container whole GPUs"):
        export_cell(build_spec(name="shout", gpu="0.5"), bundle_for("shout"), "modal", tmp_path)


def test_modal_export_is_a_file_modal_deploy_accepts(tmp_path: Path) -> None:
    """Import the exported file as `modal deploy` would (offline) and look at its app."""
    import importlib.util

    import modal

    spec = build_spec(name="shout", gpu="A10G", max_batch_size=8, replicas="0:3")
    [path] = export_cell(spec, bundle_for("shout"), "modal", tmp_path)
    assert path.name == "shout_modal.py"
    text = path.read_text()
    assert SOURCE in text and "modal deploy shout_modal.py" in text
    assert "# %%serve shout --backend modal --max-batch-size 8 --gpu A10G:1 --replicas 0:3" in text

    loader = importlib.util.spec_from_file_location("shout_modal", path)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    assert isinstance(module.app, modal.App)
    assert module.app.name == "nbserve-shout"
    assert module.SPEC.backend == "modal" and module.SPEC.gpu.type == "A10G"


def test_an_exported_replica_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve run`` of an export: the replica takes NBSERVE_TOKEN, and without it does not start."""
    from nbserve.backends.ray.replica import CellReplica

    monkeypatch.delenv("NBSERVE_TOKEN", raising=False)
    monkeypatch.setenv("NBSERVE_METRICS", "0")  # no collector to ship to outside a cluster
    bundle = bundle_for("shout")
    options = build_spec(name="shout").runtime_options()
    with pytest.raises(RuntimeError, match=r"NBSERVE_TOKEN is not set.*--public"):
        CellReplica(bundle, options, 0.0, None)
    assert CellReplica(bundle, options, 0.0, "from-the-shell")._token() == "from-the-shell"
    monkeypatch.setenv("NBSERVE_TOKEN", "from-the-replica")
    assert CellReplica(bundle, options, 0.0, None)._token() == "from-the-replica"
    public = build_spec(name="shout", public=True).runtime_options()
    monkeypatch.delenv("NBSERVE_TOKEN")
    assert CellReplica(bundle, public, 0.0, None)._served is not None


def test_an_exported_streaming_cell_still_streams() -> None:
    source = "def spell(words):\n    for i in range(2):\n        yield [w[i] if i < len(w) else None for w in words]\n"
    bundle = make_bundle("spell", source, analyze_cell(source), batched=True)
    namespace: dict[str, object] = {}
    module = render_ray_module(build_spec(name="spell", openai="chat"), bundle)
    exec(module.split("DEPLOYMENT_OPTIONS")[0], namespace)
    assert namespace["BUNDLE"] == bundle and namespace["BUNDLE"].streams  # type: ignore[attr-defined]
    assert namespace["OPTIONS"].openai == "chat"  # type: ignore[attr-defined]
