"""``%%serve`` (deploy a cell) and ``%serve`` (manage endpoints).

Thin by design: the line's flags (declared once, in ``nbserve._flags.FLAGS``) become a
``ServeSpec``, the cell goes to ``nbserve._api``, and every error a user can fix is an
IPython ``UsageError`` (a message, no traceback).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from nbserve import _api as api
from nbserve._bench.run import run_bench
from nbserve._cell import analyze_cell
from nbserve._commands import VERBS_HELP, add_verbs, bench_plan, run_verb
from nbserve._dashboard.widget import live_dashboard
from nbserve._errors import (
    CellError,
    ClusterError,
    CommandError,
    ConfigError,
    CredentialsError,
    EndpointNotFoundError,
    NbserveError,
    SpecError,
)
from nbserve._flags import FLAGS, build_spec, flag_values
from nbserve._progress import DeployProgress

__all__ = ["ServeMagics"]

# What a user fixes by editing the line or the cell (or the environment): a message, no traceback.
_USAGE_ERRORS = (SpecError, CellError, CommandError, ConfigError, ClusterError, CredentialsError, EndpointNotFoundError)
# A %%serve cell whose cluster cannot be started or reached fails as an error, not as a usage
# message: IPython reports a UsageError as no error output, so nbval (and a reader scrolling
# a notebook) would take the cell as passed.
_DEPLOY_USAGE_ERRORS = tuple(kind for kind in _USAGE_ERRORS if kind is not ClusterError)


class _VerbParser(argparse.ArgumentParser):
    """argparse that reports to the cell (a UsageError) instead of exiting the kernel."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}\n{VERBS_HELP}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:  # after -h
        raise UsageError(message or VERBS_HELP)


def _verb_parser() -> _VerbParser:
    parser = _VerbParser(prog="%serve", add_help=False)
    add_verbs(parser.add_subparsers(dest="verb", required=True, parser_class=_VerbParser))
    return parser


def _flag_arguments(magic: Callable[..., Any]) -> Callable[..., Any]:
    """IPython's ``@argument`` for every row of the flag table, in the table's order."""
    for flag in reversed(FLAGS):  # IPython lists the arguments last-applied first
        names, options = flag.argparse()
        magic = argument(*names, **options)(magic)
    decorated: Callable[..., Any] = magic_arguments(name="%serve")(magic)  # shown as %%serve in the usage line
    return decorated


@magics_class
class ServeMagics(Magics):
    @_flag_arguments
    @line_cell_magic
    def serve(self, line: str, cell: str | None = None) -> None:
        """Turn a cell into a batched inference endpoint, or manage endpoints.

        The cell body is setup code that runs once in every replica; the handler is the
        function named by --handler, else the cell's last top-level def. With batching (the
        default) it takes a list of inputs and returns a list of outputs of the same length.
        After the cell runs, NAME in the notebook is an Endpoint: NAME(x), await NAME.acall(x),
        NAME.map(xs), NAME.url, NAME.stats(), NAME.dashboard(), NAME.logs(), NAME.down().
        The cell's output is a live dashboard of the endpoint's latency, throughput and replicas.
        """
        if cell is None:
            self._run_verb(line)
            return
        shell = self.shell
        if shell is None:
            raise UsageError("%%serve needs an IPython shell")
        values = flag_values(vars(parse_argstring(self.serve, line)))
        restart = bool(values.pop("restart"))
        # The magic line becomes a comment, so line numbers in errors and in replica
        # tracebacks match the lines of the notebook cell.
        source = f"# %%serve {line.strip()}\n{cell}"
        try:
            if values["name"] is None:
                values["name"] = analyze_cell(source, handler=values["handler"], batched=not values["no_batch"]).name
            spec = build_spec(**values)
            progress = DeployProgress(spec.name)
            endpoint = api.deploy_spec(spec, source, namespace=shell.user_ns, on_event=progress, restart=restart)
        except _DEPLOY_USAGE_ERRORS as exc:
            raise UsageError(str(exc)) from None
        shell.user_ns[spec.name] = endpoint
        progress.finish(f"deployed at {endpoint.url}")  # an event, not a state: the dashboard shows the state
        display(live_dashboard(endpoint))

    serve.__doc__ = (serve.__doc__ or "") + VERBS_HELP

    def _bench(self, args: argparse.Namespace) -> None:
        # --payload may be any expression over the notebook's names (`texts[0]`).
        shell = self.shell
        result = run_bench(bench_plan(args, shell.user_ns if shell is not None else {}))
        if shell is not None:
            shell.user_ns["_bench"] = result  # the raw figures, for code

    def _run_verb(self, line: str) -> None:
        args = _verb_parser().parse_args(shlex.split(line))
        try:
            if args.verb == "bench":
                self._bench(args)
                return
            print(run_verb(args))
        except NbserveError as exc:
            raise UsageError(f"%serve {exc}" if isinstance(exc, CommandError) else str(exc)) from None
