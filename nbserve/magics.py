"""``%%serve`` (deploy a cell) and ``%serve`` (manage endpoints).

Thin by design: flags become a ``ServeSpec``, the cell goes to ``nbserve.api``, and every
error a user can fix is an IPython ``UsageError`` (a message, no traceback).
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

from nbserve import api
from nbserve.cell import analyze_cell
from nbserve.commands import VerbUsageError, add_verbs, bench_plan, run_verb
from nbserve.dashboard import live_dashboard
from nbserve.errors import (
    CellError,
    ClusterError,
    CredentialsError,
    EndpointNotFoundError,
    NbserveError,
    SpecError,
)
from nbserve.progress import DeployProgress
from nbserve.spec import DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_BATCH_SIZE, build_spec

__all__ = ["ServeMagics"]

VERBS_HELP = """
Line magic (manage endpoints):
  %serve ls                     list endpoints on the cluster
  %serve status NAME            state, replicas, latency, throughput and batching of NAME
  %serve logs NAME [--tail N]   what NAME's replicas printed
  %serve down NAME [NAME ...]   delete endpoints (--force: even if others use them)
  %serve down --all             delete every nbserve endpoint on the cluster
  %serve export NAME --to ray|kuberay|modal [-o DIR]
                                write NAME out as a standalone app (default DIR: .)
  %serve bench NAME --payload EXPR|FILE.jsonl [-c N] [-d SECONDS | -n REQUESTS]
                                load-test NAME over HTTP: live progress, then latency
                                percentiles, a histogram and errors by status (result in _bench)
Each verb takes --address ADDRESS for a cluster other than the embedded one.
"""


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


@magics_class
class ServeMagics(Magics):
    @magic_arguments(name="%serve")  # shown as %%serve in the usage line
    @argument("name", nargs="?", default=None, help="endpoint name (default: the handler's name)")
    @argument("--backend", default="ray", help="where to deploy: ray (default) or modal")
    @argument("--handler", default=None, help="function that serves requests (default: the last def)")
    @argument("--gpu", default=None, help="GPUs per replica: a number (0.25, 1, 2) or TYPE[:N] (A10G, H100:2)")
    @argument("--cpus", default=None, help="CPUs per replica (default 1)")
    @argument("--memory", default=None, help="memory per replica, e.g. 4GiB")
    @argument("--replicas", default=None, help="N replicas, or MIN:MAX to autoscale (default 1)")
    @argument("--target-ongoing", default=None, help="autoscaling target of ongoing requests per replica")
    @argument(
        "--scaledown-window",
        default=None,
        metavar="S",
        help="idle seconds before a replica above MIN is stopped (with --replicas MIN:MAX)",
    )
    @argument("--max-batch-size", default=None, help=f"largest batch (default {DEFAULT_MAX_BATCH_SIZE})")
    @argument(
        "--batch-wait-ms", default=None, help=f"wait to fill a batch (default {DEFAULT_BATCH_WAIT_S * 1000:g} ms)"
    )
    @argument("--no-batch", action="store_true", help="call the handler with one input at a time")
    @argument("--route", default=None, help="HTTP route (default /NAME)")
    @argument("--address", default=None, help="an existing Ray cluster (default: RAY_ADDRESS, else the embedded one)")
    @argument("--pip", nargs="+", default=[], metavar="PKG", help="pip packages for the replicas' environment")
    @argument("--env", nargs="+", action="append", default=[], metavar="K=V", help="environment variables of replicas")
    @argument("--uses", default="", metavar="NAME[,NAME...]", help="deployed endpoints the cell calls by handle")
    @argument(
        "--restart",
        action="store_true",
        help="start new replica processes instead of reloading the cell in the running ones",
    )
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
        args = parse_argstring(self.serve, line)
        # The magic line becomes a comment, so line numbers in errors and in replica
        # tracebacks match the lines of the notebook cell.
        source = f"# %%serve {line.strip()}\n{cell}"
        try:
            spec = build_spec(
                name=args.name or analyze_cell(source, handler=args.handler, batched=not args.no_batch).name,
                backend=args.backend,
                handler=args.handler,
                no_batch=args.no_batch,
                max_batch_size=args.max_batch_size,
                batch_wait_ms=args.batch_wait_ms,
                gpu=args.gpu,
                cpus=args.cpus,
                memory=args.memory,
                replicas=args.replicas,
                target_ongoing=args.target_ongoing,
                scaledown_window=args.scaledown_window,
                route=args.route,
                address=args.address,
                pip=args.pip,
                env=[item for group in args.env for item in group],
                uses=args.uses,
                environ=os.environ,
            )
            progress = DeployProgress(spec.name)
            endpoint = api.deploy_spec(spec, source, namespace=shell.user_ns, on_event=progress, restart=args.restart)
        except (SpecError, CellError, ClusterError, CredentialsError, EndpointNotFoundError) as exc:
            raise UsageError(str(exc)) from None
        shell.user_ns[spec.name] = endpoint
        progress.finish(f"running at {endpoint.url}")
        display(live_dashboard(endpoint))

    serve.__doc__ = (serve.__doc__ or "") + VERBS_HELP

    def _bench(self, args: argparse.Namespace) -> None:
        from nbserve.bench import run_bench

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
        except (NbserveError, VerbUsageError) as exc:
            raise UsageError(f"%serve {exc}" if isinstance(exc, VerbUsageError) else str(exc)) from None
