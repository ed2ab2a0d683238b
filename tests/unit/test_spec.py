"""Unit tests of the flags (``nbserve._flags``) and the spec they build: every parser's valid
mappings and every SpecError path, the backends' own rules included."""

from __future__ import annotations

from typing import Any

import pytest

from nbserve._errors import SpecError
from nbserve._flags import (
    build_spec,
    magic_line,
    parse_env,
    parse_gpu,
    parse_memory,
    parse_name,
    parse_replicas,
    parse_route,
    spec_flags,
)
from nbserve._spec import BatchConfig, GpuRequest, ReplicaRange, ServeSpec
from nbserve.backends import get_backend
from nbserve.backends.modal.options import modal_gpu
from nbserve.backends.ray.options import accelerator_type, cluster_address
from nbserve.runtime.bundle import DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE


def check_spec_error(error: SpecError, flag: str, rule: str, fix: str) -> None:
    """The error names the flag, and its message states the rule and how to fix it."""
    assert isinstance(error, ValueError)
    assert error.flag == flag
    message = str(error)
    assert message.startswith(f"{flag} ")
    assert rule in error.rule
    assert fix in error.fix
    assert error.rule in message
    assert error.fix in message


# --- parse_gpu -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "backend", "count", "gpu_type"),
    [
        ("0.25", "ray", 0.25, None),
        ("1", "ray", 1.0, None),
        ("2", "ray", 2.0, None),
        (" 0.5 ", "ray", 0.5, None),
        ("H100:2", "ray", 2.0, "H100"),
        ("a10g", "ray", 1.0, "A10G"),
        ("A100:1", "ray", 1.0, "A100"),
        ("l40s", "ray", 1.0, "L40S"),
        ("a100-80gb:2", "ray", 2.0, "A100-80G"),
        ("T4", "modal", 1.0, "T4"),
        ("h100:4", "modal", 4.0, "H100"),
        ("a100-80g", "modal", 1.0, "A100-80GB"),
    ],
)
def test_parse_gpu_valid(text: str, backend: str, count: float, gpu_type: str | None) -> None:
    """The count is neutral; each backend names the type its own way (Ray's and Modal's)."""
    spec = build_spec(name="e", gpu=text, backend=backend)
    assert spec.gpu is not None and spec.gpu.count == count
    if backend == "ray":
        assert accelerator_type(spec) == gpu_type
    else:
        assert modal_gpu(spec) == (gpu_type if count == 1 else f"{gpu_type}:{count:g}")


def test_parse_gpu_keeps_the_type_as_written_in_upper_case() -> None:
    assert parse_gpu(" 0.5 ") == GpuRequest(0.5)
    assert parse_gpu("a100-80gb:2") == GpuRequest(2.0, "A100-80GB")


def test_gpu_request_fraction_and_str() -> None:
    assert parse_gpu("0.25").is_fractional
    assert not parse_gpu("2").is_fractional
    assert str(parse_gpu("0.25")) == "0.25"
    assert str(parse_gpu("2")) == "2"
    assert str(parse_gpu("H100:2")) == "H100:2"


@pytest.mark.parametrize(
    ("text", "backend", "rule", "fix"),
    [
        ("2.5", "ray", "above 1 must be whole", "Use 2 or 3."),
        ("1.5", "ray", "above 1 must be whole", "Use 1 or 2."),
        ("0", "ray", "must be a positive number", "drop --gpu"),
        ("-1", "ray", "must be a positive number", "drop --gpu"),
        ("nan", "ray", "must be a positive number", "drop --gpu"),
        ("inf", "ray", "must be a positive number", "drop --gpu"),
        ("H100:0", "ray", "count of at least 1", "H100:1"),
        ("H100:1.5", "ray", "expected a number of GPUs", "--gpu A100:2"),
        ("A10G:x", "ray", "expected a number of GPUs", "--gpu A100:2"),
        ("4x", "ray", "expected a number of GPUs", "--gpu 0.5"),
        ("H1OO", "ray", "is not a GPU type nbserve knows", "--gpu A10G"),
        ("gtx1080:2", "ray", "is not a GPU type nbserve knows", "--gpu H100:2"),
        ("", "ray", "expected a number of GPUs", "--gpu 0.5"),
        ("0.25", "modal", "cannot be honoured", "Name a GPU type instead"),
        ("0.5", "modal", "cannot be honoured", "--backend ray"),
        ("2", "modal", "Modal needs a GPU type", "--gpu A10G:2"),
    ],
)
def test_parse_gpu_errors(text: str, backend: str, rule: str, fix: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        build_spec(name="e", gpu=text, backend=backend)
    check_spec_error(excinfo.value, "--gpu", rule, fix)


# --- parse_memory ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4GiB", 4 * 2**30),
        ("4 GiB", 4 * 2**30),
        ("4gib", 4 * 2**30),
        ("512MB", 512 * 10**6),
        ("512MiB", 512 * 2**20),
        ("2g", 2 * 10**9),
        ("2GB", 2 * 10**9),
        ("1.5GiB", int(1.5 * 2**30)),
        ("1TiB", 2**40),
        ("1MiB", 2**20),
        ("2048KiB", 2 * 2**20),
        (str(2**20), 2**20),
        ("5000000", 5_000_000),
        ("5000000B", 5_000_000),
        # Whitespace around the size (and between number and unit) is deliberately allowed.
        (" 4GiB ", 4 * 2**30),
        ("4GiB\n", 4 * 2**30),
    ],
)
def test_parse_memory_valid(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("text", "rule", "fix"),
    [
        ("1000", "below 1 MiB", "forget the unit"),
        (str(2**20 - 1), "below 1 MiB", "forget the unit"),
        ("512KB", "below 1 MiB", "forget the unit"),
        ("1MB", "below 1 MiB", "forget the unit"),
        ("4XB", "expected a size", "GiB"),
        ("4GiB\nx", "expected a size", "GiB"),
        ("4 gigabytes", "expected a size", "GiB"),
        ("-1GiB", "expected a size", "GiB"),
        ("GiB", "expected a size", "GiB"),
        ("", "expected a size", "GiB"),
    ],
)
def test_parse_memory_errors(text: str, rule: str, fix: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_memory(text)
    check_spec_error(excinfo.value, "--memory", rule, fix)


# --- parse_replicas --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "low", "high", "autoscaling", "shown"),
    [
        ("3", 3, 3, False, "3"),
        ("1", 1, 1, False, "1"),
        ("1:4", 1, 4, True, "1:4"),
        ("0:2", 0, 2, True, "0:2"),
        ("2:2", 2, 2, False, "2"),
    ],
)
def test_parse_replicas_valid(text: str, low: int, high: int, autoscaling: bool, shown: str) -> None:
    replicas = parse_replicas(text)
    assert replicas == ReplicaRange(low, high)
    assert replicas.autoscaling is autoscaling
    assert str(replicas) == shown


@pytest.mark.parametrize(
    ("text", "rule", "fix"),
    [
        ("0", "at least 1", "0:N"),
        ("-2", "at least 1", "0:N"),
        ("4:1", "0 <= MIN <= MAX", "4:4"),
        ("0:0", "MAX >= 1", "0:1"),
        ("-1:3", "0 <= MIN <= MAX", "0:3"),
        ("x", "whole number", "--replicas 1:4"),
        ("1.5", "whole number", "--replicas 1:4"),
        ("1:", "whole number", "--replicas 1:4"),
        ("1:2:3", "whole number", "--replicas 1:4"),
        ("", "whole number", "--replicas 1:4"),
    ],
)
def test_parse_replicas_errors(text: str, rule: str, fix: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_replicas(text)
    check_spec_error(excinfo.value, "--replicas", rule, fix)


# --- parse_route -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["/embed", "/models/embed", "/a.b_c~d-e", "/v2/x"])
def test_parse_route_valid(route: str) -> None:
    assert parse_route(route) == route


@pytest.mark.parametrize(
    "route", ["embed", "/", "", "/embed/", "/a//b", "/a b", "/a?b=1", "//x", "/embed\n", "/a\n/b", " /embed"]
)
def test_parse_route_errors(route: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_route(route)
    check_spec_error(excinfo.value, "--route", "starts with /", "Drop --route")


# --- parse_env -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "pairs"),
    [
        (["A=1"], (("A", "1"),)),
        (["A=1", "B_2=x"], (("A", "1"), ("B_2", "x"))),
        (["_X=a=b"], (("_X", "a=b"),)),
        (["EMPTY="], (("EMPTY", ""),)),
        (["A=1", "A=2"], (("A", "2"),)),
        ([], ()),
    ],
)
def test_parse_env_valid(items: list[str], pairs: tuple[tuple[str, str], ...]) -> None:
    assert parse_env(items) == pairs


@pytest.mark.parametrize("item", ["1A=2", "noequals", "=1", "A-B=1", "A B=1", "A\n=1", "A \n=1"])
def test_parse_env_errors(item: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_env(["OK=1", item])
    check_spec_error(excinfo.value, "--env", "KEY=VALUE", "--env HF_HUB_OFFLINE=1")
    assert excinfo.value.value == item


# --- parse_name ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["embed", "embed_v2", "_private", "E", "a" * 63, "match"])
def test_parse_name_valid(name: str) -> None:
    assert parse_name(name) == name


@pytest.mark.parametrize(
    "name", ["2x", "class", "a-b", "", "a b", "None", "a" * 64, "émbed", "embed\n", "embed\n\n", "a" * 63 + "\n"]
)
def test_parse_name_errors(name: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_name(name)
    check_spec_error(excinfo.value, "NAME", "Python identifier", "not starting with a digit")
    assert excinfo.value.value == repr(name)


# --- build_spec ------------------------------------------------------------------------------


def test_build_spec_defaults() -> None:
    spec = build_spec(name="embed")
    assert spec == ServeSpec(name="embed")
    assert spec.backend == "ray"
    assert spec.handler is None
    assert spec.batch == BatchConfig(DEFAULT_MAX_BATCH_SIZE, DEFAULT_BATCH_WAIT_S)
    assert spec.batched
    assert spec.gpu is None
    assert spec.cpus is None
    assert spec.memory_bytes is None
    assert spec.replicas == ReplicaRange(1, 1)
    assert spec.target_ongoing is None
    assert spec.route == "/embed"
    assert spec.address is None
    assert spec.pip == ()
    assert spec.env == ()
    assert spec.env_vars == {}


def test_build_spec_all_flags() -> None:
    spec = build_spec(
        name="embed",
        handler="predict",
        max_batch_size=64,
        batch_wait_ms=20,
        gpu="H100:2",
        cpus=4,
        memory="16GiB",
        replicas="1:4",
        target_ongoing=8,
        scaledown_window="90",
        route="/models/embed",
        address="ray://head:10001",
        pip=["numpy", "torch"],
        env=["A=1", "B=2"],
    )
    assert spec.handler == "predict"
    assert spec.batch == BatchConfig(64, 0.02)
    assert spec.gpu == GpuRequest(2.0, "H100")
    assert spec.cpus == 4
    assert spec.memory_bytes == 16 * 2**30
    assert spec.replicas == ReplicaRange(1, 4)
    assert spec.target_ongoing == 8
    assert spec.scaledown_window_s == 90
    assert build_spec(**spec_flags(spec)) == spec  # exports rebuild specs from flags
    assert "--scaledown-window 90" in magic_line(spec)
    assert spec.route == "/models/embed"
    assert spec.address == "ray://head:10001"
    assert spec.pip == ("numpy", "torch")
    assert spec.env_vars == {"A": "1", "B": "2"}


def test_build_spec_accepts_numbers_as_strings() -> None:
    spec = build_spec(
        name="embed",
        max_batch_size="16",
        batch_wait_ms="2.5",
        cpus="0.5",
        gpu="0.5",
        replicas="0:3",
        target_ongoing="16",
    )
    assert spec.batch == BatchConfig(16, 0.0025)
    assert spec.cpus == 0.5
    assert type(spec.cpus) is float
    assert spec.gpu == GpuRequest(0.5)
    assert spec.replicas == ReplicaRange(0, 3)
    assert spec.target_ongoing == 16.0


def test_build_spec_whole_float_batch_size_becomes_an_int() -> None:
    spec = build_spec(name="embed", max_batch_size=16.0)
    assert spec.batch == BatchConfig(16, DEFAULT_BATCH_WAIT_S)
    assert spec.batch is not None
    assert type(spec.batch.max_size) is int
    assert "batch 16 / " in spec.resource_line()
    assert "16.0" not in spec.resource_line()


def test_build_spec_accepts_python_numbers_for_gpu_and_replicas() -> None:
    spec = build_spec(name="embed", gpu=0.25, replicas=3)
    assert spec.gpu == GpuRequest(0.25)
    assert spec.replicas == ReplicaRange(3, 3)


@pytest.mark.parametrize(
    ("flag", "kwargs", "example"),
    [
        ("--max-batch-size", {"max_batch_size": "abc"}, "--max-batch-size 8"),
        ("--max-batch-size", {"max_batch_size": "16.5"}, "--max-batch-size 8"),
        ("--batch-wait-ms", {"batch_wait_ms": "abc"}, "--batch-wait-ms 0.5"),
        ("--cpus", {"cpus": "abc"}, "--cpus 0.5"),
        ("--cpus", {"cpus": ""}, "--cpus 0.5"),
        ("--target-ongoing", {"target_ongoing": "abc", "replicas": "1:4"}, "--target-ongoing 0.5"),
    ],
)
def test_build_spec_rejects_non_numeric_strings(flag: str, kwargs: dict[str, Any], example: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        build_spec(name="embed", **kwargs)
    noun = "a whole number" if flag == "--max-batch-size" else "a number"
    check_spec_error(excinfo.value, flag, f"expected {noun}", example)


@pytest.mark.parametrize(
    ("flag", "kwargs", "example"),
    [
        ("--max-batch-size", {"max_batch_size": 2.5}, "--max-batch-size 8"),
        ("--max-batch-size", {"max_batch_size": True}, "--max-batch-size 8"),
        ("--max-batch-size", {"max_batch_size": False}, "--max-batch-size 8"),
        ("--max-batch-size", {"max_batch_size": float("inf")}, "--max-batch-size 8"),
        ("--max-batch-size", {"max_batch_size": float("nan")}, "--max-batch-size 8"),
        ("--batch-wait-ms", {"batch_wait_ms": True}, "--batch-wait-ms 0.5"),
        ("--cpus", {"cpus": True}, "--cpus 0.5"),
        ("--target-ongoing", {"target_ongoing": True, "replicas": "1:4"}, "--target-ongoing 0.5"),
    ],
)
def test_build_spec_rejects_fractional_sizes_and_booleans(flag: str, kwargs: dict[str, Any], example: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        build_spec(name="embed", **kwargs)
    noun = "a whole number" if flag == "--max-batch-size" else "a number"
    check_spec_error(excinfo.value, flag, f"expected {noun}", example)


@pytest.mark.parametrize(
    ("kwargs", "flag", "rule", "fix"),
    [
        ({"backend": "k8s"}, "--backend", "one of ray, modal", "Use --backend ray"),
        ({"name": "2x"}, "NAME", "Python identifier", "e.g. embed_v2"),
        ({"name": "embed\n"}, "NAME", "Python identifier", "e.g. embed_v2"),
        ({"handler": "1f"}, "--handler", "must be a function name", "Name a def"),
        ({"handler": "class"}, "--handler", "must be a function name", "Name a def"),
        ({"no_batch": True, "max_batch_size": 8}, "--max-batch-size", "contradict --no-batch", "Drop --no-batch"),
        ({"no_batch": True, "batch_wait_ms": 5}, "--batch-wait-ms", "contradict --no-batch", "Drop --no-batch"),
        ({"max_batch_size": 0}, "--max-batch-size", "between 1 and 4096", "--no-batch"),
        ({"max_batch_size": 5000}, "--max-batch-size", "between 1 and 4096", "8 to 128"),
        ({"max_batch_size": "-3"}, "--max-batch-size", "between 1 and 4096", "8 to 128"),
        ({"batch_wait_ms": -1}, "--batch-wait-ms", "between 0 and 10000 ms", "1 to 50 ms"),
        ({"batch_wait_ms": "-0.5"}, "--batch-wait-ms", "between 0 and 10000 ms", "1 to 50 ms"),
        ({"batch_wait_ms": 10_001}, "--batch-wait-ms", "between 0 and 10000 ms", "1 to 50 ms"),
        ({"batch_wait_ms": "nan"}, "--batch-wait-ms", "between 0 and 10000 ms", "1 to 50 ms"),
        ({"cpus": -1}, "--cpus", "zero or more", "--cpus 0.5"),
        ({"cpus": "inf"}, "--cpus", "zero or more", "--cpus 0.5"),
        ({"target_ongoing": 8}, "--target-ongoing", "only applies to a replica range", "--replicas 1:4"),
        ({"target_ongoing": "8", "replicas": "2"}, "--target-ongoing", "replica range", "--replicas MIN:MAX"),
        ({"target_ongoing": 0, "replicas": "1:4"}, "--target-ongoing", "greater than zero", "--target-ongoing 16"),
        ({"target_ongoing": -2, "replicas": "1:4"}, "--target-ongoing", "greater than zero", "--target-ongoing 16"),
        ({"scaledown_window": 60}, "--scaledown-window", "only applies to a replica range", "--replicas 0:4"),
        ({"scaledown_window": 1, "replicas": "0:2"}, "--scaledown-window", "between 2 and 3600", "60"),
        ({"scaledown_window": "4000", "replicas": "0:2"}, "--scaledown-window", "between 2 and 3600", "60"),
        ({"scaledown_window": "1.5", "replicas": "0:2"}, "--scaledown-window", "whole number", "--scaledown-window 8"),
        ({"replicas": "4:1"}, "--replicas", "0 <= MIN <= MAX", "4:4"),
        ({"replicas": 0}, "--replicas", "at least 1", "0:N"),
        ({"replicas": "x"}, "--replicas", "whole number", "--replicas 2"),
        ({"gpu": "2.5"}, "--gpu", "must be whole", "Use 2 or 3."),
        ({"gpu": 0.25, "backend": "modal"}, "--gpu", "whole GPUs", "Name a GPU type instead"),
        ({"memory": "12"}, "--memory", "below 1 MiB", "forget the unit"),
        ({"memory": "lots"}, "--memory", "expected a size", "GiB"),
        ({"route": "embed"}, "--route", "starts with /", "Drop --route"),
        ({"route": "/embed\n"}, "--route", "starts with /", "Drop --route"),
        ({"env": ["A=1", "noequals"]}, "--env", "KEY=VALUE", "--env HF_HUB_OFFLINE=1"),
        ({"env": ["1A=2"]}, "--env", "KEY=VALUE", "--env HF_HUB_OFFLINE=1"),
        ({"env": ["A\n=1"]}, "--env", "KEY=VALUE", "--env HF_HUB_OFFLINE=1"),
        ({"address": ""}, "--address", "the address is empty", "Drop --address"),
        ({"address": "   "}, "--address", "the address is empty", "Drop --address"),
        ({"backend": "modal", "address": "ray://head:10001"}, "--address", "names a Ray cluster", "Drop it"),
    ],
)
def test_build_spec_errors(kwargs: dict[str, Any], flag: str, rule: str, fix: str) -> None:
    kwargs = {"name": "embed", **kwargs}
    with pytest.raises(SpecError) as excinfo:
        build_spec(**kwargs)
    check_spec_error(excinfo.value, flag, rule, fix)


def test_build_spec_batch_boundaries_are_accepted() -> None:
    assert build_spec(name="e", max_batch_size=1).batch == BatchConfig(1, DEFAULT_BATCH_WAIT_S)
    assert build_spec(name="e", max_batch_size=4096).batch == BatchConfig(4096, DEFAULT_BATCH_WAIT_S)
    assert build_spec(name="e", batch_wait_ms=0).batch == BatchConfig(DEFAULT_MAX_BATCH_SIZE, 0.0)
    assert build_spec(name="e", batch_wait_ms=10_000).batch == BatchConfig(DEFAULT_MAX_BATCH_SIZE, 10.0)
    assert build_spec(name="e", cpus=0).cpus == 0


def test_build_spec_no_batch() -> None:
    spec = build_spec(name="embed", no_batch=True)
    assert spec.batch is None
    assert not spec.batched


def test_target_ongoing_with_range() -> None:
    spec = build_spec(name="embed", replicas="0:4", target_ongoing=2.5)
    assert spec.target_ongoing == 2.5
    assert spec.replicas.autoscaling


def test_ray_address_from_environ_when_no_address_given() -> None:
    spec = build_spec(name="embed")
    assert cluster_address(spec.address, {"RAY_ADDRESS": "ray://env-head:10001"}) == "ray://env-head:10001"


def test_explicit_address_wins_over_environ() -> None:
    spec = build_spec(name="embed", address="ray://flag:10001")
    assert cluster_address(spec.address, {"RAY_ADDRESS": "ray://env:10001"}) == "ray://flag:10001"


@pytest.mark.parametrize("environ", [{}, {"RAY_ADDRESS": ""}, {"OTHER": "x"}])
def test_no_address_anywhere_means_embedded_cluster(environ: dict[str, str]) -> None:
    assert cluster_address(build_spec(name="embed").address, environ) is None


def test_modal_backend_ignores_ray_address_in_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "ray://env:10001")
    spec = build_spec(name="embed", backend="modal", gpu="T4")
    assert spec.backend == "modal"
    assert spec.address is None
    assert spec.gpu == GpuRequest(1.0, "T4")
    assert get_backend("modal").address is None


@pytest.mark.parametrize("name", ["embed", "my_model_v2"])
def test_route_defaults_to_slash_name(name: str) -> None:
    assert build_spec(name=name).route == f"/{name}"
    assert ServeSpec(name=name).route == f"/{name}"


def test_explicit_route_is_kept() -> None:
    assert build_spec(name="embed", route="/v1/embed").route == "/v1/embed"
    assert ServeSpec(name="embed", route="/x").route == "/x"


# --- ServeSpec.resource_line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "line"),
    [
        ({}, "1 CPU · batch 32 / 5 ms · replicas 1"),
        ({"gpu": "0.25", "replicas": "1:4"}, "0.25 GPU · 1 CPU · batch 32 / 5 ms · replicas 1:4"),
        (
            {"gpu": "H100:2", "cpus": 2, "memory": "4GiB", "no_batch": True, "replicas": 3},
            "H100:2 GPU · 2 CPU · 4 GiB · no batching · replicas 3",
        ),
        ({"cpus": "0.5", "max_batch_size": 8, "batch_wait_ms": 2.5}, "0.5 CPU · batch 8 / 2.5 ms · replicas 1"),
        ({"max_batch_size": 16.0}, "1 CPU · batch 16 / 5 ms · replicas 1"),
        ({"cpus": 0}, "0 CPU · batch 32 / 5 ms · replicas 1"),
        ({"memory": "512MiB"}, "1 CPU · 0.5 GiB · batch 32 / 5 ms · replicas 1"),
    ],
)
def test_resource_line(kwargs: dict[str, Any], line: str) -> None:
    assert build_spec(name="embed", **kwargs).resource_line() == line


def test_spec_error_message_format() -> None:
    error = SpecError("--gpu", "2.5", "some rule", "Some fix.")
    assert str(error) == "--gpu 2.5: some rule. Some fix."
    assert (error.flag, error.value, error.rule, error.fix) == ("--gpu", "2.5", "some rule", "Some fix.")


@pytest.mark.parametrize(
    ("uses", "expected"),
    [("embed", ("embed",)), ("embed,search", ("embed", "search")), (" a , b ,a", ("a", "b")), (["x", "y"], ("x", "y"))],
)
def test_uses_lists_the_endpoints_a_cell_calls(uses: object, expected: tuple[str, ...]) -> None:
    spec = build_spec(name="rank", uses=uses)  # type: ignore[arg-type]
    assert spec.uses == expected
    assert build_spec(**spec_flags(spec)) == spec
    assert "--uses " + ",".join(expected) in magic_line(spec)


@pytest.mark.parametrize(("uses", "fragment"), [("rank", "cannot use itself"), ("2x", "named like an endpoint")])
def test_bad_uses_are_refused(uses: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment) as raised:
        build_spec(name="rank", uses=uses)
    assert raised.value.flag == "--uses"


def test_uses_on_modal_is_refused_with_the_fix() -> None:
    with pytest.raises(SpecError, match="Ray backend only") as raised:
        build_spec(name="rank", backend="modal", gpu="T4", uses="embed")
    assert raised.value.flag == "--uses"
