"""The ``nbserve`` command: the ``%serve`` verbs, plus the embedded cluster's start and stop."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nbserve._commands import add_verbs, run_verb
from nbserve._config import embedded_settings
from nbserve._errors import CommandError, NbserveError
from nbserve.backends import get_backend
from nbserve.backends.ray import cluster

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nbserve", description="Manage nbserve endpoints and the local Ray cluster.")
    verbs = parser.add_subparsers(dest="verb", required=True)

    cluster_parser = verbs.add_parser("cluster", help="the embedded local Ray cluster")
    cluster_parser.add_argument("action", choices=["start", "stop", "status"])

    token = verbs.add_parser("token", help="print the token the HTTP endpoints ask for (the one place it is printed)")
    token.add_argument("--rotate", action="store_true", help="replace it; running endpoints refuse the old one")
    token.add_argument("--address", default=None, help="a Ray cluster other than the embedded one (its own token)")

    add_verbs(verbs)
    return parser


def _cluster(action: str) -> int:
    settings = embedded_settings()  # ConfigError for a bad NBSERVE_* variable
    if action == "start":
        info = cluster.start_embedded(settings, on_status=lambda text: print(text, file=sys.stderr))
        print(f"Ray cluster at {info.address}; endpoints at {info.http_url}/NAME; {_dashboard(info)}")
    elif action == "stop":
        stopped = cluster.stop_embedded(settings)
        print("stopped the local Ray cluster" if stopped else "the local Ray cluster was not running")
    else:
        running = cluster.embedded_status(settings)
        if running is None:
            print(f"not running (it starts on first use at {settings.address})")
            return 3
        print(f"running at {running.address}; endpoints at {running.http_url}/NAME; {_dashboard(running)}")
    return 0


def _dashboard(info: cluster.ClusterInfo) -> str:
    return f"dashboard {info.dashboard_url}" if info.dashboard_url else "no dashboard (NBSERVE_RAY_DASHBOARD=0)"


def _token(rotate: bool, address: str | None) -> int:
    """Print the token (``export NBSERVE_TOKEN=$(nbserve token)``), after replacing it if asked."""
    backend = get_backend("ray", address)
    token = backend.rotate_token() if rotate else backend.token()
    print(token)
    if rotate:
        print("rotated: endpoints accept only this token within seconds; re-export NBSERVE_TOKEN", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "cluster":
            return _cluster(args.action)
        if args.verb == "token":
            return _token(args.rotate, args.address)
        if args.verb in ("ls", "status", "logs", "down", "export", "bench") and args.backend == "local":
            raise CommandError(f"{args.verb}: --backend local endpoints live inside one kernel; use %serve there")
        print(run_verb(args))
    except CommandError as exc:
        print(f"nbserve {exc}", file=sys.stderr)
        return 2
    except NbserveError as exc:
        print(f"nbserve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
