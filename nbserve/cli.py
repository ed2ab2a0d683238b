"""The ``nbserve`` command: the ``%serve`` verbs, plus the embedded cluster's start and stop."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nbserve import api
from nbserve.backends.ray import cluster
from nbserve.config import embedded_settings
from nbserve.errors import NbserveError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbserve", description="Manage nbserve endpoints and the local Ray cluster.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    cluster_parser = verbs.add_parser("cluster", help="the embedded local Ray cluster")
    cluster_parser.add_argument("action", choices=["start", "stop", "status"])

    verbs.add_parser("ls", help="list endpoints")
    status = verbs.add_parser("status", help="state and replicas of an endpoint")
    status.add_argument("name")
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
    for sub in (status, logs, down, export, verbs.choices["ls"]):
        sub.add_argument("--address", default=None, help="a Ray cluster other than the embedded one")
    return parser


def _cluster(action: str) -> int:
    settings = embedded_settings()
    if action == "start":
        info = cluster.start_embedded(settings, on_status=lambda text: print(text, file=sys.stderr))
        print(f"Ray cluster at {info.address}; endpoints at {info.http_url}/NAME; dashboard {info.dashboard_url}")
    elif action == "stop":
        stopped = cluster.stop_embedded(settings)
        print("stopped the local Ray cluster" if stopped else "the local Ray cluster was not running")
    else:
        running = cluster.embedded_status(settings)
        if running is None:
            print(f"not running (it starts on first use at {settings.address})")
            return 3
        print(f"running at {running.address}; endpoints at {running.http_url}/NAME; dashboard {running.dashboard_url}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "cluster":
            return _cluster(args.action)
        if args.verb == "ls":
            print(api.format_endpoints(api.list_endpoints(address=args.address)))
        elif args.verb == "status":
            status = api.endpoint(args.name, address=args.address).status()
            print(f"{status.name}: {status.state}, replicas {status.replicas}")
        elif args.verb == "logs":
            print(api.endpoint(args.name, address=args.address).logs(args.tail))
        elif args.verb == "down":
            if args.all == bool(args.names):
                print("nbserve down: name the endpoints to delete, or pass --all", file=sys.stderr)
                return 2
            names = [i.name for i in api.list_endpoints(address=args.address)] if args.all else args.names
            for name in names:
                api.endpoint(name, address=args.address).down(force=args.force or args.all)
                print(f"deleted {name}")
        elif args.verb == "export":
            for path in api.export(args.name, args.to, args.output, address=args.address):
                print(f"wrote {path}")
    except NbserveError as exc:
        print(f"nbserve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
