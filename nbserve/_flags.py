"""The flags of ``%%serve``, in one table: each flag is one row.

The magic's arguments and its ``%%serve?`` help, ``build_spec`` (the Python API's keyword
arguments), the way back from a spec to its flags and magic line, and the README's flag
table (checked by a test) all come from ``FLAGS``. Adding a flag is one row here, a field
of ``ServeSpec`` if it is new, and its translation in each backend's ``options`` module.

Every parser raises ``SpecError`` with the rule, the value and the fix. Values come as text
from the magic line or as Python values from ``nbserve.deploy(...)``; both are accepted.
Rules between flags (``--target-ongoing`` needs a replica range, say) are in ``_assemble``;
rules of one backend (Modal's GPU types) are in that backend's ``options.check``.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from nbserve._errors import SpecError
from nbserve._spec import (
    BACKENDS,
    DEFAULT_SETUP_TIMEOUT_S,
    OPENAI_ROUTES,
    BatchConfig,
    GpuRequest,
    ReplicaRange,
    ServeSpec,
)
from nbserve.runtime.bundle import DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE, DEFAULT_TIMEOUT_S

__all__ = [
    "FLAGS",
    "Flag",
    "build_spec",
    "magic_line",
    "parse_env",
    "parse_gpu",
    "parse_memory",
    "parse_name",
    "parse_replicas",
    "parse_route",
    "spec_flags",
]

# Far above what one replica could fill; a typo such as 32000 is more likely than intent.
MAX_BATCH_SIZE_LIMIT = 4096
MAX_BATCH_WAIT_S = 10.0
# --scaledown-window: Modal accepts 2 to 3600 s; Ray's downscale_delay_s gets the same rule,
# so a cell moves between backends unchanged.
SCALEDOWN_WINDOW_RANGE_S = (2, 3600)

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


# --- parsers of one value -----------------------------------------------------------------------


def parse_name(text: str) -> str:
    if not isinstance(text, str) or not _NAME_RE.match(text) or keyword.iskeyword(text):
        raise SpecError(
            "NAME",
            repr(text),
            "an endpoint name must be a Python identifier of at most 63 characters "
            "(it becomes a variable in the notebook and the route /NAME)",
            "Use letters, digits and underscores, not starting with a digit, e.g. embed_v2.",
        )
    return text


def parse_backend(text: str) -> str:
    if text not in BACKENDS:
        raise SpecError(
            "--backend", text, f"the backend must be one of {', '.join(BACKENDS)}", "Use --backend ray (the default)."
        )
    return text


def parse_openai(text: str) -> str:
    if text not in OPENAI_ROUTES:
        raise SpecError(
            "--openai",
            text,
            f"the OpenAI API to answer must be one of {', '.join(OPENAI_ROUTES)}",
            "Use --openai embeddings for a handler of texts to vectors, --openai chat for one that writes text.",
        )
    return text


def parse_handler(text: str) -> str:
    if not text.isidentifier() or keyword.iskeyword(text):
        raise SpecError("--handler", text, "the handler must be a function name", "Name a def of the cell.")
    return text


def parse_gpu(value: str | float) -> GpuRequest:
    """``0.25`` / ``2`` (a count) or ``A10G`` / ``H100:2`` (a type and a whole count).

    The type is kept as written, in upper case: whether a backend offers it is that
    backend's rule (``options.check``).
    """
    text = str(value).strip()
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
            "a GPU count above 1 must be whole (a fraction shares one GPU; replicas never span a part of one)",
            f"Use {math.floor(count)} or {math.ceil(count)}.",
        )
    return GpuRequest(count, text=text)


def _parse_gpu_type(text: str) -> GpuRequest:
    match = _GPU_TYPE_RE.match(text)
    if not match:
        raise SpecError(
            "--gpu",
            text,
            "expected a number of GPUs (0.25, 1, 2) or a GPU type with an optional count (A10G, H100:2)",
            "Write e.g. --gpu 0.5 or --gpu A100:2.",
        )
    n = int(match.group(2) or 1)
    if n < 1:
        raise SpecError("--gpu", text, "a GPU type needs a count of at least 1", f"Use e.g. {match.group(1)}:1.")
    return GpuRequest(float(n), match.group(1).upper(), text=text)


def parse_memory(text: str) -> int:
    """``4GiB``, ``512MB``, ``2g`` or a byte count, as bytes."""
    match = _MEMORY_RE.match(str(text))
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


def parse_replicas(value: str | int) -> ReplicaRange:
    """``N`` (fixed) or ``MIN:MAX`` (autoscaling, ``MIN`` may be 0)."""
    text = str(value)
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


def parse_address(text: str) -> str:
    if not text.strip():
        raise SpecError("--address", repr(text), "the address is empty", "Drop --address to use the embedded cluster.")
    return text


def parse_uses(uses: str | Iterable[str]) -> tuple[str, ...]:
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


def _number(flag: str, kind: type[int] | type[float]) -> Callable[[Any], Any]:
    """A parser of a flag's number, given as a number (Python API) or as text (the magic line)."""
    noun = "a whole number" if kind is int else "a number"

    def parse(value: Any) -> Any:
        error = SpecError(flag, value, f"expected {noun}", f"Write e.g. {flag} {8 if kind is int else 0.5}.")
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

    return parse


def _in_range(
    flag: str, kind: type[int] | type[float], low: float, high: float, rule: str, fix: str
) -> Callable[[Any], Any]:
    number = _number(flag, kind)

    def parse(value: Any) -> Any:
        parsed = number(value)
        if not (math.isfinite(parsed) and low <= parsed <= high):
            raise SpecError(flag, f"{parsed:g}", rule, fix)
        return parsed

    return parse


def _at_least_zero(flag: str, fix: str) -> Callable[[Any], float]:
    return _in_range(flag, float, 0, math.inf, "the value must be zero or more", fix)


def _positive(flag: str, fix: str) -> Callable[[Any], float]:
    number = _number(flag, float)

    def parse(value: Any) -> float:
        parsed: float = number(value)
        if not (math.isfinite(parsed) and parsed > 0):
            raise SpecError(flag, f"{parsed:g}", "the value must be greater than zero", fix)
        return parsed

    return parse


def _text(value: Any) -> str:
    return str(value)


def _texts(value: Any) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def _format_memory(size: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


# --- the table --------------------------------------------------------------------------------

Kind = Literal["positional", "value", "switch", "list"]


@dataclass(frozen=True)
class Flag:
    """One flag of ``%%serve``.

    ``parse`` turns a given value into what ``ServeSpec`` holds (raising ``SpecError``);
    ``field`` names the spec's field it fills as is, or ``None`` where ``_assemble`` combines
    it with other flags; ``show`` gives the value back from a spec (``None`` at the default).
    A flag with ``in_spec=False`` is an option of the deploy, not of the endpoint.
    """

    name: str
    help: str
    parse: Callable[[Any], Any] = _text
    show: Callable[[ServeSpec], Any] | None = None
    metavar: str | None = None
    kind: Kind = "value"
    field: str | None = None
    in_spec: bool = True

    @property
    def dest(self) -> str:
        """The keyword of ``build_spec`` and ``nbserve.deploy`` (``--max-batch-size``: ``max_batch_size``)."""
        return self.name.lstrip("-").replace("-", "_").lower()

    def value_of(self, spec: ServeSpec) -> Any:
        """What to pass to ``build_spec`` to get ``spec``'s value back; ``None`` at the default."""
        if self.show is not None:
            return self.show(spec)
        if self.field is None:
            return None
        value = getattr(spec, self.field)
        default = next(f.default for f in fields(ServeSpec) if f.name == self.field)
        if value == default:
            return None
        return list(value) if isinstance(value, tuple) else value

    def given(self, raw: Any) -> bool:
        """Whether ``raw`` sets the flag: ``None`` never does, nor ``False`` for a switch or an
        empty list for a list flag (what the parser gives for a flag not on the line)."""
        if raw is None:
            return False
        if self.kind == "switch":
            return raw is not False
        if self.kind == "list":
            return not (isinstance(raw, (list, tuple)) and not raw)
        return True

    def argparse(self) -> tuple[list[str], dict[str, Any]]:
        """The arguments of ``ArgumentParser.add_argument`` (and IPython's ``@argument``)."""
        if self.kind == "positional":
            return [self.dest], {"nargs": "?", "default": None, "help": self.help}
        kwargs: dict[str, Any] = {"help": self.help}
        if self.kind == "switch":
            kwargs.update(action="store_true")
        elif self.kind == "list":  # repeatable: --env A=1 --env B=2 is --env A=1 B=2
            kwargs.update(nargs="+", action="append", default=[], metavar=self.metavar)
        else:
            kwargs.update(default=None, metavar=self.metavar)
        return [self.name], kwargs


def _batch_size(spec: ServeSpec) -> int | None:
    return spec.batch.max_size if spec.batch and spec.batch.max_size != DEFAULT_MAX_BATCH_SIZE else None


def _batch_wait(spec: ServeSpec) -> float | None:
    return round(spec.batch.wait_s * 1000, 6) if spec.batch and spec.batch.wait_s != DEFAULT_BATCH_WAIT_S else None


FLAGS: tuple[Flag, ...] = (
    Flag("NAME", "endpoint name, its route /NAME and the notebook variable (default: the handler's name)",
         parse_name, kind="positional", field="name"),
    Flag("--backend", "where to deploy: ray (default), modal, or local (in this process, for trying a cell)",
         parse_backend, field="backend", metavar="ray|modal|local"),
    Flag("--handler", "function that serves requests (default: the cell's last def)", parse_handler,
         field="handler", metavar="FUNC"),
    Flag("--max-batch-size", f"largest batch (default {DEFAULT_MAX_BATCH_SIZE})",
         _in_range("--max-batch-size", int, 1, MAX_BATCH_SIZE_LIMIT,
                   f"the batch size must be between 1 and {MAX_BATCH_SIZE_LIMIT}",
                   "Typical values are 8 to 128; use --no-batch for one input at a time."),
         show=_batch_size, metavar="N"),
    Flag("--batch-wait-ms", f"wait to fill a batch (default {DEFAULT_BATCH_WAIT_S * 1000:g} ms)",
         _in_range("--batch-wait-ms", float, 0, MAX_BATCH_WAIT_S * 1000,
                   f"the wait must be between 0 and {MAX_BATCH_WAIT_S * 1000:g} ms", "Typical values are 1 to 50 ms."),
         show=_batch_wait, metavar="MS"),
    Flag("--no-batch", "call the handler with one input at a time", bool, show=lambda s: s.batch is None or None,
         kind="switch"),
    Flag("--gpu", "GPUs per replica: a number (0.25, 1, 2) or TYPE[:N] (A10G, H100:2)", parse_gpu,
         show=lambda s: str(s.gpu) if s.gpu else None, field="gpu", metavar="N|TYPE[:N]"),
    Flag("--cpus", "CPUs per replica (default 1)", _at_least_zero("--cpus", "Use e.g. --cpus 1 or --cpus 0.5."),
         field="cpus", metavar="N"),
    Flag("--memory", "memory per replica, e.g. 4GiB", parse_memory,
         show=lambda s: _format_memory(s.memory_bytes) if s.memory_bytes else None, field="memory_bytes",
         metavar="SIZE"),
    Flag("--replicas", "N replicas, or MIN:MAX to autoscale (default 1)", parse_replicas,
         show=lambda s: str(s.replicas) if s.replicas != ReplicaRange(1, 1) else None, field="replicas",
         metavar="N|MIN:MAX"),
    Flag("--target-ongoing", "autoscaling target of ongoing requests per replica (default: the batch size)",
         _positive("--target-ongoing", "Use e.g. --target-ongoing 16."), field="target_ongoing", metavar="N"),
    Flag("--scaledown-window", "idle seconds before a replica above MIN is stopped (with --replicas MIN:MAX)",
         _number("--scaledown-window", int), field="scaledown_window_s", metavar="S"),
    Flag("--route", "HTTP route (default /NAME)", parse_route,
         show=lambda s: s.route if s.route != f"/{s.name}" else None, field="route", metavar="/PATH"),
    Flag("--address", "an existing Ray cluster (default: RAY_ADDRESS, else the embedded one)", parse_address,
         field="address", metavar="HOST:PORT"),
    Flag("--pip", "pip packages for the replicas' environment", _texts, field="pip", metavar="PKG", kind="list"),
    Flag("--env", "environment variables of the replicas", parse_env,
         show=lambda s: [f"{k}={v}" for k, v in s.env] or None, field="env", metavar="K=V", kind="list"),
    Flag("--uses", "deployed endpoints the cell calls by handle", parse_uses,
         show=lambda s: ",".join(s.uses) or None, field="uses", metavar="NAME[,NAME...]"),
    Flag("--timeout", f"seconds a request may wait for its answer; past it, it fails alone (HTTP 504; "
         f"default {DEFAULT_TIMEOUT_S:g})",
         _in_range("--timeout", float, 0.01, 86400, "the time limit must be between 0.01 s and a day",
                   "Use e.g. --timeout 30."),
         show=lambda s: s.timeout_s if s.timeout_s != DEFAULT_TIMEOUT_S else None, field="timeout_s", metavar="S"),
    Flag("--max-queued", "inputs a replica keeps waiting beyond its running batch; more are turned away at once "
         "(HTTP 503, Retry-After; default two batches)",
         _in_range("--max-queued", int, 0, 1_000_000, "the queue limit must be 0 or more",
                   "Use e.g. --max-queued 64."),
         field="max_queued", metavar="N"),
    Flag("--no-retry", "do not re-run a call whose replica died (for handlers with side effects)", bool,
         show=lambda s: (not s.retry) or None, kind="switch"),
    Flag("--setup-timeout", f"seconds the cell's setup may take before the deploy is called off "
         f"(default {DEFAULT_SETUP_TIMEOUT_S:g})",
         _in_range("--setup-timeout", float, 1, 86400, "the setup time limit must be between 1 s and a day",
                   "Use e.g. --setup-timeout 300."),
         show=lambda s: s.setup_timeout_s if s.setup_timeout_s != DEFAULT_SETUP_TIMEOUT_S else None,
         field="setup_timeout_s", metavar="S"),
    Flag("--openai", "also answer OpenAI's API: embeddings (/v1/embeddings), chat (/v1/chat/completions and "
         "/v1/completions) or completions (/v1/completions)", parse_openai, field="openai",
         metavar="embeddings|chat|completions"),
    Flag("--public", "answer HTTP without the token (a demo on loopback); the default asks every caller for it",
         bool, show=lambda s: s.public or None, kind="switch", field="public"),
    Flag("--restart", "start new replica processes instead of reloading the cell in the running ones", bool,
         kind="switch", in_spec=False),
)  # fmt: skip

SPEC_FLAGS = tuple(flag for flag in FLAGS if flag.in_spec)
_BY_DEST = {flag.dest: flag for flag in FLAGS}


def build_spec(**flags: Any) -> ServeSpec:
    """Validate flag values (text from the magic line, or Python values) into a ``ServeSpec``.

    The keywords are the flags with underscores (``max_batch_size=32``, ``gpu="0.25"``,
    ``replicas="1:4"``, ``no_batch=True``); ``name`` is required.
    """
    unknown = sorted(set(flags) - {flag.dest for flag in SPEC_FLAGS})
    if unknown:
        flag = "--" + unknown[0].replace("_", "-")
        known = ", ".join(flag.name for flag in SPEC_FLAGS[1:])
        raise SpecError(flag, flags[unknown[0]], "nbserve has no such flag", f"The flags are {known}.")
    if "name" not in flags:
        raise SpecError("NAME", "missing", "an endpoint needs a name", "Pass name=..., e.g. name='embed'.")
    values = {dest: _BY_DEST[dest].parse(raw) for dest, raw in flags.items() if _BY_DEST[dest].given(raw)}
    spec = _assemble(values)
    from nbserve.backends import check_spec

    check_spec(spec)
    return spec


def _assemble(values: Mapping[str, Any]) -> ServeSpec:
    """The spec from parsed values: the rules between flags, then the fields."""
    size, wait_ms = values.get("max_batch_size"), values.get("batch_wait_ms")
    batch: BatchConfig | None
    if values.get("no_batch"):
        given = next(
            ((f, v) for f, v in (("--max-batch-size", size), ("--batch-wait-ms", wait_ms)) if v is not None), None
        )
        if given is not None:
            raise SpecError(
                given[0],
                given[1],
                "batch settings contradict --no-batch",
                "Drop --no-batch to batch, or drop the batch settings.",
            )
        batch = None
    else:
        batch = BatchConfig(
            DEFAULT_MAX_BATCH_SIZE if size is None else size,
            DEFAULT_BATCH_WAIT_S if wait_ms is None else wait_ms / 1000,
        )
    replicas: ReplicaRange = values.get("replicas", ReplicaRange(1, 1))
    target = values.get("target_ongoing")
    if target is not None and not replicas.autoscaling:
        raise SpecError(
            "--target-ongoing",
            f"{target:g}",
            "the autoscaling target only applies to a replica range",
            "Add --replicas MIN:MAX, e.g. --replicas 1:4.",
        )
    window = values.get("scaledown_window")
    if window is not None:
        low, high = SCALEDOWN_WINDOW_RANGE_S
        if not low <= window <= high:
            raise SpecError(
                "--scaledown-window",
                window,
                f"the window must be between {low} and {high} seconds (Modal's limits, kept on Ray too)",
                "Use e.g. --scaledown-window 60.",
            )
        if not replicas.autoscaling:
            raise SpecError(
                "--scaledown-window",
                window,
                "the scale-down window only applies to a replica range",
                "Add --replicas MIN:MAX, e.g. --replicas 0:4.",
            )
    name = values["name"]
    if name in values.get("uses", ()):
        raise SpecError("--uses", name, "an endpoint cannot use itself", f"Drop {name} from --uses.")
    direct = {flag.field: values[flag.dest] for flag in SPEC_FLAGS if flag.field and flag.dest in values}
    retry = not values.get("no_retry", False)
    return ServeSpec(**{**direct, "batch": batch, "replicas": replicas, "scaledown_window_s": window, "retry": retry})


def spec_flags(spec: ServeSpec) -> dict[str, Any]:
    """The keyword arguments of ``build_spec`` that give ``spec`` back (defaults left out)."""
    flags: dict[str, Any] = {}
    for flag in SPEC_FLAGS:
        value = flag.value_of(spec)
        if value is not None:
            flags[flag.dest] = value
    return flags


def magic_line(spec: ServeSpec) -> str:
    """The ``%%serve`` line that asks for ``spec``."""
    parts = ["%%serve", spec.name]
    for dest, value in spec_flags(spec).items():
        flag = _BY_DEST[dest]
        if flag.kind == "positional":
            continue
        if flag.kind == "switch":
            parts.append(flag.name)
        elif isinstance(value, list):
            parts += [flag.name, *map(str, value)]
        else:
            parts += [flag.name, f"{value:g}" if isinstance(value, float) else str(value)]
    return " ".join(parts)


def flag_values(parsed: Mapping[str, Any]) -> dict[str, Any]:
    """Flag values from an argparse namespace's ``vars``: repeated list flags joined into one list."""
    values: dict[str, Any] = {}
    for flag in FLAGS:
        raw = parsed.get(flag.dest)
        if flag.kind == "list" and raw:
            raw = [item for group in raw for item in (group if isinstance(group, list) else [group])]
        values[flag.dest] = raw
    return values
