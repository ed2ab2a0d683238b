"""Export a deployed cell out of the notebook: a standalone Ray Serve app, a KubeRay
RayService manifest beside it, or a Modal app file.

The files keep the cell's source intact and show how each flag maps to the platform. They
import nbserve for one thing only, the replica runtime (``CellReplica`` on Ray, the class
built by ``build_modal_app`` on Modal), so that an exported app batches, isolates failing
inputs and speaks the HTTP contract exactly as the notebook endpoint did.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from nbserve._errors import CommandError
from nbserve._export.kuberay import render_rayservice
from nbserve._export.source import render_modal_module, render_ray_module
from nbserve._spec import ServeSpec
from nbserve.runtime import CellBundle

__all__ = ["TARGETS", "export_cell", "render_modal_module", "render_ray_module", "render_rayservice"]

Target = Literal["ray", "kuberay", "modal"]
TARGETS: tuple[Target, ...] = ("ray", "kuberay", "modal")


def export_cell(spec: ServeSpec, bundle: CellBundle, to: Target, directory: Path) -> list[Path]:
    """Write the files for ``to`` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        path = directory / name
        path.write_text(text)
        written.append(path)

    module = f"{spec.name}_app"
    if to in ("ray", "kuberay"):
        write(f"{module}.py", render_ray_module(spec, bundle))
    if to == "kuberay":
        write(f"{spec.name}_rayservice.yaml", render_rayservice(spec, module))
    if to == "modal":
        write(f"{spec.name}_modal.py", render_modal_module(spec, bundle))
    if not written:
        raise CommandError(f"unknown export target {to!r}; choose one of {', '.join(TARGETS)}")
    return written
