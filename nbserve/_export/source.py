"""Render a cell as a standalone Python module (Ray Serve or Modal)."""

from __future__ import annotations

import textwrap
from dataclasses import fields

from nbserve._flags import build_spec, magic_line, spec_flags
from nbserve._spec import ServeSpec
from nbserve._version import __version__
from nbserve.backends.ray.options import CELL_DEPLOYMENT, deployment_options
from nbserve.runtime import CellBundle, RuntimeOptions

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


def _options_literal(options: RuntimeOptions) -> str:
    lines = "".join(f"    {f.name}={getattr(options, f.name)!r},\n" for f in fields(options))
    return f"RuntimeOptions(\n{lines})"


def _cell_section(spec: ServeSpec, bundle: CellBundle, how: str) -> str:
    """The parts every export shares: the cell's source, its notebook values, and ``how`` it
    is served (the options or the spec, ending with the line that makes them)."""
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

# {magic_line(spec)}
{how}
BUNDLE = CellBundle(
    name={spec.name!r},
    source=CELL_SOURCE,
    handler={bundle.handler!r},
    batched={bundle.batched!r},
    is_async={bundle.is_async!r},
    constants=NOTEBOOK_VALUES,
    modules=NOTEBOOK_MODULES,
    streams={bundle.streams!r},
)
'''


def render_ray_module(spec: ServeSpec, bundle: CellBundle) -> str:
    """A module whose ``app`` ``serve run`` serves and ``serve build`` accepts."""
    module = f"{spec.name}_app"
    options = _literal(deployment_options(spec))
    export_token = "" if spec.public else "    export NBSERVE_TOKEN=$(nbserve token)   # the token its callers show\n"
    auth_header = "" if spec.public else ' -H "Authorization: Bearer $NBSERVE_TOKEN"'
    token_note = "" if spec.public else ",\nits token included: without NBSERVE_TOKEN its replicas refuse to start"
    header = f'''\
"""{spec.name}: a Ray Serve application exported by nbserve {__version__} from a %%serve cell.

Run it on a local or existing Ray cluster (from this folder):
{export_token}    serve run {module}:app --name {spec.name} --route-prefix {spec.route}
Write a Serve config (for `serve deploy` or a KubeRay RayService):
    serve build {module}:app -o {spec.name}_config.yaml
Query it:
    curl -X POST http://127.0.0.1:8000{spec.route}{auth_header} -d '{{"inputs": [...]}}'

nbserve must be installed where the replicas run (pip install nbserve): it provides the
replica runtime, so this app batches, isolates failing inputs and answers HTTP exactly as
the notebook endpoint did{token_note}.
Everything else is plain Ray Serve.
"""

import os
import time

from ray import serve

from nbserve.backends.ray.replica import CellReplica
from nbserve.runtime import CellBundle, RuntimeOptions

'''
    how = f"OPTIONS = {_options_literal(spec.runtime_options())}"
    footer = f"""
# How the flags map to Ray Serve: resources -> ray_actor_options, --replicas N|MIN:MAX ->
# num_replicas or autoscaling_config. max_ongoing_requests covers the batch the replica runs,
# its queue (--max-queued) and a headroom of requests it turns away at once with a JSON 503.
DEPLOYMENT_OPTIONS = {options}

# The token callers must show (Authorization: Bearer ...), taken where this module is imported.
TOKEN = os.environ.get("NBSERVE_TOKEN")

app = serve.deployment(name={CELL_DEPLOYMENT!r}, **DEPLOYMENT_OPTIONS)(CellReplica).bind(
    BUNDLE, OPTIONS, time.time(), TOKEN
)
"""
    return header + _cell_section(spec, bundle, how) + footer


def render_modal_module(spec: ServeSpec, bundle: CellBundle) -> str:
    """A file that ``modal deploy`` accepts: its ``app`` is built by nbserve's Modal backend.

    Raises ``SpecError`` for what Modal cannot honour (a fractional GPU), with the fix.
    """
    # The Ray cluster it ran on means nothing on Modal; Modal's own rules are checked here.
    modal_spec = build_spec(**{**spec_flags(spec), "backend": "modal", "address": None})
    flags = ", ".join(f"{k}={v!r}" for k, v in spec_flags(modal_spec).items())
    header = f'''\
"""{spec.name}: a Modal app exported by nbserve {__version__} from a %%serve cell.

Deploy it (needs Modal credentials: `modal token new`, or MODAL_TOKEN_ID/MODAL_TOKEN_SECRET):
    modal deploy {spec.name}_modal.py

The app holds a class that runs the cell (setup in @modal.enter, the handler behind
@modal.batched) and a web function that speaks nbserve's HTTP contract. nbserve builds both
from the values below, so the deployed app behaves exactly like the notebook endpoint.
"""

from nbserve import build_spec
from nbserve.backends.modal.app import build_modal_app
from nbserve.runtime import CellBundle

'''
    footer = textwrap.dedent("""
        app = build_modal_app(SPEC, BUNDLE)
        """)
    return header + _cell_section(modal_spec, bundle, f"SPEC = build_spec({flags})") + footer
