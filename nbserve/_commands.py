"""The management verbs (ls, status, logs, down, export, bench), shared by ``%serve`` and ``nbserve``.

Each front end builds its own parser with ``add_verbs`` and prints what ``run_verb`` returns;
only how errors are shown differs (an IPython ``UsageError``, or a message and exit code).
Nothing here imports ipywidgets: the command line never shows a widget.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from nbserve import _api as api
from nbserve._bench import report
from nbserve._bench.loadgen import LoadPlan
from nbserve._bench.payload import load_payloads
from nbserve._bench.run import run_bench
from nbserve._dashboard import render
from nbserve._errors import CommandError
from nbserve._spec import BACKENDS

__all__ = ["VERBS_HELP", "add_verbs", "bench_plan", "run_verb"]

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
Each verb takes --backend ray|local|modal (default ray) and --address ADDRESS for a Ray
cluster other than the embedded one.
"""


def add_verbs(verbs: Any) -> None:
    """Add the verbs to ``verbs``, the result of ``ArgumentParser.add_subparsers``."""
    ls = verbs.add_parser("ls", help="list endpoints")
    status = verbs.add_parser("status", help="state, replicas, latency and throughput of an endpoint")
    status.add_argument("name")
    status.add_argument("--window", type=float, default=60.0, help="seconds of traffic the figures cover")
    logs = verbs.add_parser("logs", help="what an endpoint's replicas printed")
    logs.add_argument("name")
    logs.add_argument("--tail", type=int, default=200)
    down = verbs.add_parser("down", help="delete endpoints")
    down.add_argument("names", nargs="*")
    down.add_argument("--all", action="store_true", help="delete every nbserve endpoint")
    down.add_argument("--force", action="store_true", help="delete even if other endpoints use it")
    export = verbs.add_parser("export", help="write an endpoint out as a standalone app")
    export.add_argument("name")
    export.add_argument("--to", required=True, choices=["ray", "kuberay", "modal"])
    export.add_argument("-o", "--output", default=".", help="folder to write into (default: .)")
    bench = verbs.add_parser("bench", help="load-test an endpoint over HTTP")
    bench.add_argument("name")
    bench.add_argument("--concurrency", "-c", type=int, default=8, help="clients sending at once (default 8)")
    stop = bench.add_mutually_exclusive_group()
    stop.add_argument("--duration", "-d", type=float, default=None, help="seconds to run (default 10)")
    stop.add_argument("--requests", "-n", type=int, default=None, help="requests to send, instead of --duration")
    bench.add_argument(
        "--payload",
        "-p",
        required=True,
        help="the input: a Python expression (a literal on the command line), or a file of JSON lines",
    )
    for sub in (ls, status, logs, down, export, bench):
        sub.add_argument("--backend", default="ray", choices=BACKENDS, help="where the endpoints run (default: ray)")
        sub.add_argument("--address", default=None, help="a Ray cluster other than the embedded one")


def run_verb(args: argparse.Namespace) -> str:
    """Run the verb ``args`` names; return the text to show. Raises ``NbserveError``s."""
    where = {"backend": args.backend, "address": args.address}
    if args.verb == "ls":
        return api.format_endpoints(api.list_endpoints(**where))
    if args.verb == "status":
        if args.window <= 0:
            raise CommandError(f"status: --window must be a positive number of seconds, got {args.window:g}")
        endpoint = api.endpoint(args.name, **where)
        info, stats = endpoint.info(), endpoint.stats(args.window)
        text = render.text_summary(info, stats)
        return f"{text}\n  {info.status.message}" if info.status.message else text
    if args.verb == "logs":
        return api.endpoint(args.name, **where).logs(args.tail)
    if args.verb == "down":
        return _down(args.names, args.all, args.force, where)
    if args.verb == "bench":
        return report.summary_text(run_bench(bench_plan(args), widget=False))
    if args.verb == "export":
        return "\n".join(f"wrote {path}" for path in api.export(args.name, args.to, args.output, **where))
    raise CommandError(f"unknown verb {args.verb!r}")


def bench_plan(args: argparse.Namespace, namespace: Mapping[str, Any] | None = None) -> LoadPlan:
    """The load test ``bench`` asks for; raises ``CommandError`` for bad arguments."""
    try:
        payloads = load_payloads(args.payload, namespace)
        duration = args.duration if args.duration is not None or args.requests is not None else 10.0
        endpoint = api.endpoint(args.name, backend=args.backend, address=args.address)
        return LoadPlan(
            endpoint.url,
            payloads,
            args.concurrency,
            duration_s=duration,
            requests=args.requests,
            headers=endpoint.headers(),
            stream=endpoint.info(fresh=False).streams,
        )
    except CommandError as exc:
        raise CommandError(f"bench: {exc}") from None


def _down(names: list[str], everything: bool, force: bool, where: Mapping[str, Any]) -> str:
    if everything == bool(names):
        raise CommandError("down: name the endpoints to delete, or pass --all (not both)")
    if everything:
        names = [info.name for info in api.list_endpoints(**where)]
        if not names:
            return "no endpoints to delete"
    for name in names:
        # With --all every user of an endpoint goes too, so none is left calling it.
        api.endpoint(name, **where).down(force=force or everything)
    return "\n".join(f"deleted {name}" for name in names)
