"""What a ``%%serve`` line asks for, validated once, in neutral units.

``ServeSpec`` is frozen and does no I/O: backends translate it into their own options
(Ray's ``ray_actor_options``, Modal's ``@app.cls`` arguments). Every parser here raises
``SpecError`` with the rule, the value and the fix, so the magic can show it as a
``UsageError`` before anything is deployed.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbserve.errors import SpecError

__all__ = [
    "BACKENDS",
    "DEFAULT_BATCH_WAIT_S",
    "DEFAULT_MAX_BATCH_SIZE",
    "BatchConfig",
    "GpuRequest",
    "ReplicaRange",
    "ServeSpec",
    "parse_env",
    "parse_gpu",
    "parse_memory",
    "parse_name",
    "parse_replicas",
    "parse_route",
]

BACKENDS = ("ray", "modal")
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_WAIT_S = 0.005
# Far above what one replica could fill; a typo such as 32000 is more likely than intent.
MAX_BATCH_SIZE_LIMIT = 4096
MAX_BATCH_WAIT_S = 10.0
# --scaledown-window: Modal accepts 2 to 3600 s; Ray's downscale_delay_s gets the same rule,
# so a cell moves between backends unchanged.
SCALEDOWN_WINDOW_RANGE_S = (2, 3600)

# GPU types as Ray's accelerator_type names them (Modal's names for the same cards are
# mapped by its backend). A type outside this list is far more often a typo than a card.
KNOWN_GPU_TYPES = (
    "T4", "L4", "A10G", "A100", "A100-40G", "A100-80G", "L40S", "H100", "H200", "H20",
    "B200", "B300", "GB200", "V100", "P100", "P4", "K80", "RTX-PRO-6000",
    "AMD-Instinct-MI100", "AMD-Instinct-MI210", "AMD-Instinct-MI250X-MI250", "AMD-Instinct-MI300A",
)  # fmt: skip
_GPU_TYPES_BY_UPPER = {t.upper(): t for t in KNOWN_GPU_TYPES} | {"A100-40GB": "A100-40G", "A100-80GB": "A100-80G"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")
_ROUTE_RE = re.compile(r"^(/[A-Za-z0-9._~-]+)+\Z")
_GPU_TYPE_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*?)(?::(\d+))?\Z")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*\Z")
_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}


@dataclass(frozen=True)
class GpuRequest:
    """GPUs for one replica: a count (fractional on Ray only) and an optional type."""

    count: float
    type: str | None = None

    @property
    def is_fractional(self) -> bool:
        return not float(self.count).is_integer()

    def __str__(self) -> str:
        count = f"{self.count:g}"
        return f"{self.type}:{count}" if self.type else count


@dataclass(frozen=True)
class ReplicaRange:
    """A fixed replica count (``min == max``) or an autoscaling range."""

    min: int
    max: int

    @property
    def autoscaling(self) -> bool:
        return self.min != self.max

    def __str__(self) -> str:
        return f"{self.min}:{self.max}" if self.autoscaling else str(self.min)


@dataclass(frozen=True)
class BatchConfig:
    """Dynamic batching: up to ``max_size`` inputs, waiting at most ``wait_s`` to fill."""

    max_size: int = DEFAULT_MAX_BATCH_SIZE
    wait_s: float = DEFAULT_BATCH_WAIT_S


@dataclass(frozen=True)
class ServeSpec:
    """Everything the magic line says about one endpoint."""

    name: str
    backend: str = "ray"
    handler: str | None = None
    batch: BatchConfig | None = field(default_factory=BatchConfig)
    gpu: GpuRequest | None = None
    cpus: float | None = None
    memory_bytes: int | None = None
    replicas: ReplicaRange = ReplicaRange(1, 1)
    target_ongoing: float | None = None
    scaledown_window_s: int | None = None  # idle seconds before a replica above MIN goes
    route: str = ""
    address: str | None = None
    pip: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    uses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.route:
            object.__setattr__(self, "route", f"/{self.name}")

    @property
    def batched(self) -> bool:
        return self.batch is not None

    @property
    def env_vars(self) -> dict[str, str]:
        return dict(self.env)

    def flags(self) -> dict[str, Any]:
        """The keyword arguments of ``build_spec`` that give this spec back (defaults left out)."""
        flags: dict[str, Any] = {"name": self.name}
        if self.backend != "ray":
            flags["backend"] = self.backend
        if self.handler is not None:
            flags["handler"] = self.handler
        if self.batch is None:
            flags["no_batch"] = True
        else:
            if self.batch.max_size != DEFAULT_MAX_BATCH_SIZE:
                flags["max_batch_size"] = self.batch.max_size
            if self.batch.wait_s != DEFAULT_BATCH_WAIT_S:
                flags["batch_wait_ms"] = round(self.batch.wait_s * 1000, 6)
        if self.gpu is not None:
            flags["gpu"] = str(self.gpu)
        if self.cpus is not None:
            flags["cpus"] = self.cpus
        if self.memory_bytes is not None:
            flags["memory"] = _format_memory(self.memory_bytes)
        if self.replicas != ReplicaRange(1, 1):
            flags["replicas"] = str(self.replicas)
        if self.target_ongoing is not None:
            flags["target_ongoing"] = self.target_ongoing
        if self.scaledown_window_s is not None:
            flags["scaledown_window"] = self.scaledown_window_s
        if self.route != f"/{self.name}":
            flags["route"] = self.route
        if self.pip:
            flags["pip"] = list(self.pip)
        if self.env:
            flags["env"] = [f"{k}={v}" for k, v in self.env]
        if self.uses:
            flags["uses"] = ",".join(self.uses)
        return flags

    def magic_line(self) -> str:
        """The ``%%serve`` line that asks for this spec."""
        parts = ["%%serve", self.name]
        for key, value in self.flags().items():
            if key == "name":
                continue
            flag = "--" + key.replace("_", "-")
            if value is True:
                parts.append(flag)
            elif isinstance(value, list):
                parts += [flag, *map(str, value)]
            else:
                parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return " ".join(parts)

    def resource_line(self) -> str:
        """A one-line summary, e.g. ``0.25 GPU · 1 CPU · batch 32 / 5 ms · replicas 1:4``."""
        parts = []
        if self.gpu is not None:
            parts.append(f"{self.gpu} GPU")
        parts.append(f"{self.cpus if self.cpus is not None else 1:g} CPU")
        if self.memory_bytes:
            parts.append(f"{self.memory_bytes / 2**30:.3g} GiB")
        if self.batch is not None:
            parts.append(f"batch {self.batch.max_size} / {self.batch.wait_s * 1000:g} ms")
        else:
            parts.append("no batching")
        parts.append(f"replicas {self.replicas}")
        return " · ".join(parts)


def _format_memory(size: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parse_name(text: str) -> str:
    if not _NAME_RE.match(text) or keyword.iskeyword(text):
        raise SpecError(
            "NAME",
            repr(text),
            "an endpoint name must be a Python identifier of at most 63 characters "
            "(it becomes a variable in the notebook and the route /NAME)",
            "Use letters, digits and underscores, not starting with a digit, e.g. embed_v2.",
        )
    return text


def parse_gpu(text: str, backend: str = "ray") -> GpuRequest:
    """``0.25`` / ``2`` (a count) or ``A10G`` / ``H100:2`` (a type and whole count)."""
    text = text.strip()
    try:
        count = float(text)
    except ValueError:
        return _parse_gpu_type(text)
    if not math.isfinite(count) or count <= 0:
        raise SpecError("--gpu", text, "the GPU count must be a positive number", "Use e.g. 0.25 or 1, or drop --gpu.")
    if count > 1 and not count.is_integer():
        raise SpecError(
            "--gpu",
            text,
            "a GPU count above 1 must be whole (Ray schedules fractions only within one GPU)",
            f"Use {math.floor(count)} or {math.ceil(count)}.",
        )
    request = GpuRequest(count)
    if backend == "modal" and request.is_fractional:
        raise SpecError(
            "--gpu",
            text,
            "Modal gives each container whole GPUs, so a fraction cannot be honoured",
            "Name a GPU type instead, e.g. --gpu T4 or --gpu A10G (small, cheap GPUs), "
            "or use --backend ray to share one GPU between replicas.",
        )
    return request


def _parse_gpu_type(text: str) -> GpuRequest:
    match = _GPU_TYPE_RE.match(text)
    if not match:
        raise SpecError(
            "--gpu",
            text,
            "expected a number of GPUs (0.25, 1, 2) or a GPU type with an optional count (A10G, H100:2)",
            "Write e.g. --gpu 0.5 or --gpu A100:2.",
        )
    gpu_type, n = _GPU_TYPES_BY_UPPER.get(match.group(1).upper()), int(match.group(2) or 1)
    if gpu_type is None:
        raise SpecError(
            "--gpu",
            text,
            f"{match.group(1)!r} is not a GPU type nbserve knows (known: {', '.join(KNOWN_GPU_TYPES[:11])}, ...)",
            "Write a count such as --gpu 1 or --gpu 0.25, or a known type such as --gpu A10G or --gpu H100:2.",
        )
    if n < 1:
        raise SpecError("--gpu", text, "a GPU type needs a count of at least 1", "Use e.g. H100:1.")
    return GpuRequest(float(n), gpu_type)


def parse_memory(text: str) -> int:
    """``4GiB``, ``512MB``, ``2g`` or a byte count, as bytes."""
    match = _MEMORY_RE.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _MEMORY_UNITS:
        raise SpecError(
            "--memory",
            text,
            "expected a size such as 512MiB, 4GiB or 2GB",
            "Write a number followed by B, KB, MB, GB, KiB, MiB or GiB.",
        )
    size = int(float(match.group(1)) * _MEMORY_UNITS[unit])
    if size < 2**20:
        raise SpecError(
            "--memory",
            text,
            f"{size} bytes is below 1 MiB, too little to run a Python replica",
            "Did you forget the unit? Write e.g. 4GiB.",
        )
    return size


def parse_replicas(text: str) -> ReplicaRange:
    """``N`` (fixed) or ``MIN:MAX`` (autoscaling, ``MIN`` may be 0)."""
    low_text, sep, high_text = text.partition(":")
    try:
        low = int(low_text)
        high = int(high_text) if sep else low
    except ValueError:
        raise SpecError(
            "--replicas",
            text,
            "expected a whole number N or a range MIN:MAX",
            "Write e.g. --replicas 2 or --replicas 1:4.",
        ) from None
    if not sep and low < 1:
        raise SpecError(
            "--replicas", text, "a fixed replica count must be at least 1", "Use 1, or a range 0:N to scale to zero."
        )
    if low < 0 or high < 1 or low > high:
        raise SpecError(
            "--replicas",
            text,
            "a range needs 0 <= MIN <= MAX and MAX >= 1",
            f"Write e.g. {max(low, 0)}:{max(low, high, 1)}.",
        )
    return ReplicaRange(low, high)


def parse_route(text: str) -> str:
    if not _ROUTE_RE.match(text):
        raise SpecError(
            "--route",
            text,
            "a route is a path such as /embed or /models/embed: it starts with / and holds "
            "letters, digits, '.', '_', '~' or '-' between slashes",
            "Drop --route to use /NAME.",
        )
    return text


def parse_uses(uses: str | Iterable[str], name: str) -> tuple[str, ...]:
    """``embed,rank`` (or a list): endpoints the cell calls by name; each becomes a handle."""
    items = uses.split(",") if isinstance(uses, str) else list(uses)
    names: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if not _NAME_RE.match(item) or keyword.iskeyword(item):
            raise SpecError(
                "--uses", item, "each used endpoint is named like an endpoint", "Write e.g. --uses embed,search."
            )
        if item == name:
            raise SpecError("--uses", item, "an endpoint cannot use itself", f"Drop {item} from --uses.")
        if item not in names:
            names.append(item)
    return tuple(names)


def parse_env(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_KEY_RE.match(key):
            raise SpecError(
                "--env",
                item,
                "each variable must be written KEY=VALUE with KEY a valid variable name",
                "Write e.g. --env HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false.",
            )
        pairs[key] = value
    return tuple(pairs.items())


def _number(flag: str, value: float | str | None, kind: type[int] | type[float]) -> Any:
    """A flag's number, given as a number (Python API) or as text (the magic line)."""
    noun = "a whole number" if kind is int else "a number"
    error = SpecError(flag, value, f"expected {noun}", f"Write e.g. {flag} {8 if kind is int else 0.5}.")
    if value is None:
        return None
    if isinstance(value, bool):
        raise error
    if isinstance(value, (int, float)):
        if kind is int and not float(value).is_integer():
            raise error
        return kind(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise error from None


def _positive(flag: str, value: float | None, fix: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not ok:
        rule = "must be zero or more" if allow_zero else "must be greater than zero"
        raise SpecError(flag, f"{value:g}", f"the value {rule}", fix)


def build_spec(
    *,
    name: str,
    backend: str = "ray",
    handler: str | None = None,
    no_batch: bool = False,
    max_batch_size: int | str | None = None,
    batch_wait_ms: float | str | None = None,
    gpu: str | float | None = None,
    cpus: float | str | None = None,
    memory: str | None = None,
    replicas: str | int | None = None,
    target_ongoing: float | str | None = None,
    scaledown_window: int | str | None = None,
    route: str | None = None,
    address: str | None = None,
    pip: Iterable[str] = (),
    env: Iterable[str] = (),
    uses: str | Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> ServeSpec:
    """Validate raw flag values (strings and numbers, as the parser gives them)."""
    batch_size_value: int | None = _number("--max-batch-size", max_batch_size, int)
    batch_wait_value: float | None = _number("--batch-wait-ms", batch_wait_ms, float)
    cpus_value: float | None = _number("--cpus", cpus, float)
    target_value: float | None = _number("--target-ongoing", target_ongoing, float)
    scaledown_value: int | None = _number("--scaledown-window", scaledown_window, int)
    if backend not in BACKENDS:
        raise SpecError("--backend", backend, f"the backend must be one of {', '.join(BACKENDS)}", "Use --backend ray.")
    name = parse_name(name)
    if handler is not None and (not handler.isidentifier() or keyword.iskeyword(handler)):
        raise SpecError("--handler", handler, "the handler must be a function name", "Name a def of the cell.")

    batch: BatchConfig | None
    if no_batch:
        given = [
            f
            for f, v in (("--max-batch-size", batch_size_value), ("--batch-wait-ms", batch_wait_value))
            if v is not None
        ]
        if given:
            raise SpecError(
                given[0],
                batch_size_value if given[0] == "--max-batch-size" else batch_wait_value,
                "batch settings contradict --no-batch",
                "Drop --no-batch to batch, or drop the batch settings.",
            )
        batch = None
    else:
        size = DEFAULT_MAX_BATCH_SIZE if batch_size_value is None else batch_size_value
        if not 1 <= size <= MAX_BATCH_SIZE_LIMIT:
            raise SpecError(
                "--max-batch-size",
                size,
                f"the batch size must be between 1 and {MAX_BATCH_SIZE_LIMIT}",
                "Typical values are 8 to 128; use --no-batch for one input at a time.",
            )
        wait_ms = DEFAULT_BATCH_WAIT_S * 1000 if batch_wait_value is None else batch_wait_value
        if not math.isfinite(wait_ms) or not 0 <= wait_ms <= MAX_BATCH_WAIT_S * 1000:
            raise SpecError(
                "--batch-wait-ms",
                f"{wait_ms:g}",
                f"the wait must be between 0 and {MAX_BATCH_WAIT_S * 1000:g} ms",
                "Typical values are 1 to 50 ms.",
            )
        batch = BatchConfig(size, wait_ms / 1000)

    _positive("--cpus", cpus_value, "Use e.g. --cpus 1 or --cpus 0.5.", allow_zero=True)
    replica_range = parse_replicas(str(replicas)) if replicas is not None else ReplicaRange(1, 1)
    if target_value is not None:
        _positive("--target-ongoing", target_value, "Use e.g. --target-ongoing 16.")
        if not replica_range.autoscaling:
            raise SpecError(
                "--target-ongoing",
                f"{target_value:g}",
                "the autoscaling target only applies to a replica range",
                "Add --replicas MIN:MAX, e.g. --replicas 1:4.",
            )

    if scaledown_value is not None:
        low, high = SCALEDOWN_WINDOW_RANGE_S
        if not low <= scaledown_value <= high:
            raise SpecError(
                "--scaledown-window",
                scaledown_value,
                f"the window must be between {low} and {high} seconds (Modal's limits, kept on Ray too)",
                "Use e.g. --scaledown-window 60.",
            )
        if not replica_range.autoscaling:
            raise SpecError(
                "--scaledown-window",
                scaledown_value,
                "the scale-down window only applies to a replica range",
                "Add --replicas MIN:MAX, e.g. --replicas 0:4.",
            )

    env_pairs = parse_env(env)
    used = parse_uses(uses, name)
    if used and backend == "modal":
        raise SpecError(
            "--uses",
            ",".join(used),
            "pipelines run on the Ray backend only for now",
            "Deploy the steps with --backend ray (the default).",
        )
    environ = environ if environ is not None else {}
    resolved_address = address or environ.get("RAY_ADDRESS") or None
    if address is not None and not address.strip():
        raise SpecError(
            "--address", repr(address), "the address is empty", "Drop --address to use the embedded cluster."
        )
    if backend == "modal" and address is not None:
        raise SpecError("--address", address, "--address names a Ray cluster", "Drop it with --backend modal.")

    return ServeSpec(
        name=name,
        backend=backend,
        handler=handler,
        batch=batch,
        gpu=parse_gpu(str(gpu), backend) if gpu is not None else None,
        cpus=cpus_value,
        memory_bytes=parse_memory(memory) if memory is not None else None,
        replicas=replica_range,
        target_ongoing=target_value,
        scaledown_window_s=scaledown_value,
        route=parse_route(route) if route is not None else "",
        address=resolved_address if backend == "ray" else None,
        pip=tuple(pip),
        env=env_pairs,
        uses=used,
    )
