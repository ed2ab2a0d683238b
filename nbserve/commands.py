"""The management verbs (ls, status, logs, down, export, bench), shared by ``%serve`` and ``nbserve``.

Each front end builds its own parser with ``add_verbs`` and prints what ``run_verb`` returns;
only how errors are shown differs (an IPython ``UsageError``, or a message and exit code).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbserve import api
from nbserve.dashboard import render

if TYPE_CHECKING:
    from nbserve.bench import LoadPlan

__all__ = ["VerbUsageError", "add_verbs", "bench_plan", "run_verb"]


class VerbUsageError(ValueError):
    """The verb's arguments contradict each other."""


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
        sub.add_argument("--address", default=None, help="a Ray cluster other than the embedded one")


def run_verb(args: argparse.Namespace) -> str:
    """Run the verb ``args`` names; return the text to show. Raises ``NbserveError``s."""
    address = args.address
    if args.verb == "ls":
        return api.format_endpoints(api.list_endpoints(address=address))
    if args.verb == "status":
        if args.window <= 0:
            raise VerbUsageError(f"status: --window must be a positive number of seconds, got {args.window:g}")
        endpoint = api.endpoint(args.name, address=address)
        info, stats = endpoint.info(), endpoint.stats(args.window)
        text = render.text_summary(info, stats)
        return f"{text}\n  {info.status.message}" if info.status.message else text
    if args.verb == "logs":
        return api.endpoint(args.name, address=address).logs(args.tail)
    if args.verb == "down":
        return _down(args.names, args.all, args.force, address)
    if args.verb == "bench":
        from nbserve.bench import report, run_bench

        return report.summary_text(run_bench(bench_plan(args), widget=False))
    if args.verb == "export":
        return "\n".join(f"wrote {path}" for path in api.export(args.name, args.to, args.output, address=address))
    raise VerbUsageError(f"unknown verb {args.verb!r}")


def bench_plan(args: argparse.Namespace, namespace: Mapping[str, Any] | None = None) -> LoadPlan:
    """The load test ``bench`` asks for; raises ``VerbUsageError`` for bad arguments."""
    from nbserve.bench import LoadPlan, PayloadError, load_payloads

    try:
        payloads = load_payloads(args.payload, namespace)
        duration = args.duration if args.duration is not None or args.requests is not None else 10.0
        url = api.endpoint(args.name, address=args.address).url
        return LoadPlan(url, payloads, args.concurrency, duration_s=duration, requests=args.requests)
    except (PayloadError, ValueError) as exc:
        raise VerbUsageError(f"bench: {exc}") from None


def _down(names: list[str], everything: bool, force: bool, address: str | None) -> str:
    if everything == bool(names):
        raise VerbUsageError("down: name the endpoints to delete, or pass --all (not both)")
    if everything:
        names = [info.name for info in api.list_endpoints(address=address)]
        if not names:
            return "no endpoints to delete"
    for name in names:
        # With --all every user of an endpoint goes too, so none is left calling it.
        api.endpoint(name, address=address).down(force=force or everything)
    return "\n".join(f"deleted {name}" for name in names)
