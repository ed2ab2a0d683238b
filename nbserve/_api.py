"""The Python API behind the magics and the command line.

``deploy(source, ...)`` does what a ``%%serve`` cell does, from any Python code;
``endpoint(name)`` attaches to an endpoint another kernel deployed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from nbserve._cell import HandlerInfo, analyze_cell, make_bundle
from nbserve._endpoint import Endpoint
from nbserve._errors import CommandError, SpecError
from nbserve._export import TARGETS, export_cell
from nbserve._flags import build_spec
from nbserve._progress import DeployProgress
from nbserve._spec import ServeSpec
from nbserve._types import DeployEvent, EndpointInfo
from nbserve.backends import get_backend

__all__ = ["deploy", "deploy_spec", "endpoint", "export", "format_endpoints", "list_endpoints"]


def deploy_spec(
    spec: ServeSpec,
    source: str,
    *,
    namespace: Mapping[str, Any] | None = None,
    on_event: Callable[[DeployEvent], None] | None = None,
    restart: bool = False,
) -> Endpoint:
    """Check ``source`` against ``spec``, deploy it and return its ``Endpoint``.

    A running endpoint reloads the cell in its replicas; ``restart`` starts new ones instead.
    """
    info = analyze_cell(source, handler=spec.handler, batched=spec.batched)
    check_fits(spec, info)
    bundle = make_bundle(
        spec.name, source, info, batched=spec.batched, namespace=namespace, provided=frozenset(spec.uses)
    )
    backend = get_backend(spec.backend, spec.address)
    endpoint_info = backend.deploy(spec, bundle, on_event or (lambda event: None), restart=restart)
    return Endpoint(backend, endpoint_info)


def check_fits(spec: ServeSpec, info: HandlerInfo) -> None:
    """The rules between the flags and the handler: a streaming handler (one that yields)."""
    if not info.is_generator:
        return
    if spec.openai == "embeddings":
        raise SpecError(
            "--openai",
            "embeddings",
            f"an embeddings handler returns one vector per text, and {info.name}() yields (it streams)",
            "Return the vectors, or use --openai chat for a handler that writes text.",
        )
    if spec.backend == "modal" and spec.batched:
        raise SpecError(
            "--backend",
            "modal",
            f"on Modal a streaming handler takes one input per call ({info.name}() yields), as Modal's "
            "batched methods cannot stream",
            "Add --no-batch, or serve it on Ray (--backend ray), which streams batches.",
        )


def deploy(
    source: str,
    name: str | None = None,
    *,
    namespace: Mapping[str, Any] | None = None,
    on_event: Callable[[DeployEvent], None] | None = None,
    restart: bool = False,
    **flags: Any,
) -> Endpoint:
    """Deploy cell ``source`` as the ``%%serve`` magic would.

    ``flags`` are the magic's flags with underscores (``max_batch_size=32``, ``gpu="0.25"``,
    ``replicas="1:4"``, ``no_batch=True``, ``backend="local"``). ``name`` defaults to the
    handler's name. Re-deploying a running endpoint reloads the cell in its replicas;
    ``restart=True`` starts new replica processes (``--restart``). Progress goes to
    ``on_event``; by default a line on stderr (in a kernel, one line updated in place).
    """
    if name is None:
        name = analyze_cell(source, handler=flags.get("handler"), batched=not flags.get("no_batch")).name
    spec = build_spec(name=name, **flags)
    progress = on_event or DeployProgress(spec.name)
    return deploy_spec(spec, source, namespace=namespace, on_event=progress, restart=restart)


def endpoint(name: str, *, backend: str = "ray", address: str | None = None) -> Endpoint:
    """The ``Endpoint`` of an already deployed endpoint (from this or another kernel)."""
    target = get_backend(backend, address)
    return Endpoint(target, target.info(name))


def export(
    name: str, to: str, directory: str | Path = ".", *, backend: str = "ray", address: str | None = None
) -> list[Path]:
    """Write a deployed endpoint out as a standalone app: ``to`` is ray, kuberay or modal."""
    target = next((t for t in TARGETS if t == to), None)
    if target is None:
        raise CommandError(f"export --to {to}: choose one of {', '.join(TARGETS)}")
    spec, bundle = get_backend(backend, address).deployed_cell(name)
    return export_cell(spec, bundle, target, Path(directory))


def list_endpoints(*, backend: str = "ray", address: str | None = None) -> list[EndpointInfo]:
    """Every nbserve endpoint of one backend (on Ray: of the cluster)."""
    return get_backend(backend, address).list()


def format_endpoints(infos: Iterable[EndpointInfo]) -> str:
    """A plain-text table, one endpoint a row."""
    header = ("NAME", "STATUS", "REPLICAS", "HANDLER", "USES", "RESOURCES", "URL", "AGE")
    now = time.time()
    rows = [
        (
            i.name,
            i.status.state,
            str(i.status.replicas),
            i.handler,
            ",".join(i.uses) or "-",
            i.resources,
            i.url,
            _age(now - i.deployed_at),
        )
        for i in infos
    ]
    if not rows:
        return "No endpoints. Create one with a %%serve cell (see `%%serve?`)."
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows])


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(seconds, 0):.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
