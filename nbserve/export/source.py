"""Render a cell as a standalone Python module (Ray Serve or Modal)."""

from __future__ import annotations

import textwrap

from nbserve import __version__
from nbserve.backends.ray.options import deployment_options
from nbserve.cell import CellBundle
from nbserve.spec import ServeSpec, build_spec

__all__ = ["render_modal_module", "render_ray_module"]


def _literal(value: object, indent: int = 0) -> str:
    """A Python literal laid out one item a line, as a formatter would write it."""
    pad = " " * (indent + 4)
    if isinstance(value, dict) and value:
        items = "".join(f"{pad}{k!r}: {_literal(v, indent + 4)},\n" for k, v in value.items())
        return "{\n" + items + " " * indent + "}"
    if isinstance(value, list) and value and len(repr(value)) > 60:
        items = "".join(f"{pad}{_literal(v, indent + 4)},\n" for v in value)
        return "[\n" + items + " " * indent + "]"
    return repr(value)


def _cell_section(spec: ServeSpec, bundle: CellBundle) -> str:
    """The parts every export shares: the cell's source, its notebook values and its flags."""
    flags = ", ".join(f"{k}={v!r}" for k, v in spec.flags().items())
    source = bundle.source if bundle.source.endswith("\n") else bundle.source + "\n"
    quoted = source.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'''\
# The cell, as it was written in the notebook. Its body runs once in every replica;
# {bundle.handler}() handles {"batches" if bundle.batched else "one input at a time"}.
CELL_SOURCE = """\\
{quoted}"""

# Values the cell read from the notebook when it was exported (plain data and modules).
NOTEBOOK_VALUES = {_literal(dict(bundle.constants))}
NOTEBOOK_MODULES = {_literal(dict(bundle.modules))}

# {spec.magic_line()}
SPEC = build_spec({flags})
BUNDLE = CellBundle(
    name={spec.name!r},
    source=CELL_SOURCE,
    handler={bundle.handler!r},
    batched={bundle.batched!r},
    is_async={bundle.is_async!r},
    constants=NOTEBOOK_VALUES,
    modules=NOTEBOOK_MODULES,
)
'''


def render_ray_module(spec: ServeSpec, bundle: CellBundle) -> str:
    """A module whose ``app`` ``serve run`` serves and ``serve build`` accepts."""
    module = f"{spec.name}_app"
    options = _literal(deployment_options(spec))
    header = f'''\
"""{spec.name}: a Ray Serve application exported by nbserve {__version__} from a %%serve cell.

Run it on a local or existing Ray cluster (from this folder):
    serve run {module}:app --name {spec.name} --route-prefix {spec.route}
Write a Serve config (for `serve deploy` or a KubeRay RayService):
    serve build {module}:app -o {spec.name}_config.yaml
Query it:
    curl -X POST http://127.0.0.1:8000{spec.route} -d '{{"inputs": [...]}}'

nbserve must be installed where the replicas run (pip install nbserve): it provides the
replica runtime, so this app batches, isolates failing inputs and answers HTTP exactly as
the notebook endpoint did. Everything else is plain Ray Serve.
"""

import time

from ray import serve

from nbserve.backends.ray.replica import CELL_DEPLOYMENT, CellReplica
from nbserve.cell import CellBundle
from nbserve.spec import build_spec

'''
    footer = f"""
# How the flags map to Ray Serve: resources -> ray_actor_options, --replicas N|MIN:MAX ->
# num_replicas or autoscaling_config, and max_ongoing_requests = 2 x the batch size,
# because @serve.batch never forms a batch larger than max_ongoing_requests.
DEPLOYMENT_OPTIONS = {options}

app = serve.deployment(name=CELL_DEPLOYMENT, **DEPLOYMENT_OPTIONS)(CellReplica).bind(BUNDLE, SPEC, time.time())
"""
    return header + _cell_section(spec, bundle) + footer


def render_modal_module(spec: ServeSpec, bundle: CellBundle) -> str:
    """A file that ``modal deploy`` accepts: its ``app`` is built by nbserve's Modal backend.

    Raises ``SpecError`` for what Modal cannot honour (a fractional GPU), with the fix.
    """
    modal_spec = build_spec(**{**spec.flags(), "backend": "modal"})
    header = f'''\
"""{spec.name}: a Modal app exported by nbserve {__version__} from a %%serve cell.

Deploy it (needs Modal credentials: `modal token new`, or MODAL_TOKEN_ID/MODAL_TOKEN_SECRET):
    modal deploy {spec.name}_modal.py

The app holds a class that runs the cell (setup in @modal.enter, the handler behind
@modal.batched) and a web function that speaks nbserve's HTTP contract. nbserve builds both
from the values below, so the deployed app behaves exactly like the notebook endpoint.
"""

from nbserve.backends.modal import build_modal_app
from nbserve.cell import CellBundle
from nbserve.spec import build_spec

'''
    footer = textwrap.dedent("""
        app = build_modal_app(SPEC, BUNDLE)
        """)
    return header + _cell_section(modal_spec, bundle) + footer
