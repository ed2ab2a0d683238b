"""The ``nbserve`` command: the ``%serve`` verbs, plus the embedded cluster's start and stop."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nbserve.backends.ray import cluster
from nbserve.commands import VerbUsageError, add_verbs, run_verb
from nbserve.config import embedded_settings
from nbserve.errors import NbserveError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbserve", description="Manage nbserve endpoints and the local Ray cluster.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    cluster_parser = verbs.add_parser("cluster", help="the embedded local Ray cluster")
    cluster_parser.add_argument("action", choices=["start", "stop", "status"])

    add_verbs(verbs)
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
        print(run_verb(args))
    except VerbUsageError as exc:
        print(f"nbserve {exc}", file=sys.stderr)
        return 2
    except NbserveError as exc:
        print(f"nbserve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
