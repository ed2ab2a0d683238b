"""Modal backend: each endpoint is a Modal app of its own (``nbserve-NAME``).

Only what needs Modal's servers lives here; the app itself is built offline by ``app.py``.
Credentials are checked before anything else, because Modal's client without working
credentials can hang for a minute before it fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import modal
from modal.config import config

from nbserve._errors import CredentialsError, DeployError, EndpointNotFoundError
from nbserve._metrics import DEFAULT_WINDOW_S
from nbserve._spec import ServeSpec
from nbserve._types import DeployEvent, EndpointInfo, EndpointStats, EndpointStatus, ReplicaCounts
from nbserve.backends.base import Backend, EndpointClient, endpoint_info
from nbserve.backends.modal.app import build_modal_parts, service_caller, stream_caller
from nbserve.backends.modal.figures import endpoint_stats, log_text
from nbserve.backends.modal.options import CLASS_NAME, modal_app_name, service_method_name
from nbserve.runtime import CellBundle, Outcome

__all__ = ["ModalBackend", "require_credentials"]

CREDENTIALS_HELP = (
    "Modal credentials are not set, so nothing was deployed. Run `modal token new` (it writes "
    "~/.modal.toml), or set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET in the kernel's environment, "
    "then run the cell again."
)


def require_credentials() -> None:
    """Raise ``CredentialsError`` at once when no Modal token is configured."""
    if os.environ.get("MODAL_TOKEN_ID") and os.environ.get("MODAL_TOKEN_SECRET"):
        return
    if not (config.get("token_id") and config.get("token_secret")):
        raise CredentialsError(CREDENTIALS_HELP)


class ModalEndpointClient:
    def __init__(self, app_name: str, method_name: str, streams: bool) -> None:
        self._call = service_caller(app_name, method_name)
        self._stream = stream_caller(app_name) if streams else None

    async def call(self, item: Any) -> Outcome:
        return (await self._call([item]))[0]

    async def call_batch(self, items: list[Any]) -> list[Outcome]:
        return await self._call(items)

    async def stream(self, item: Any) -> AsyncGenerator[Any, None]:
        if self._stream is None:  # a plain handler: its output is a stream of one chunk
            yield (await self.call(item)).unwrap()
            return
        chunks = self._stream(item)
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            await chunks.aclose()


class ModalBackend(Backend):
    name = "modal"
    # Each stats() is three calls to Modal's API, whose statistics are aggregated with a lag.
    refresh_s = 15.0

    def __init__(self) -> None:
        # What this process deployed: Modal's Python API lists no apps, and the spec and the
        # cell are needed again for export and for the endpoint's description.
        self._deployed: dict[str, tuple[ServeSpec, CellBundle, str, float]] = {}

    def _deploy(
        self,
        spec: ServeSpec,
        bundle: CellBundle,
        on_event: Callable[[DeployEvent], None],
        *,
        restart: bool,  # every Modal deploy rolls out new containers
    ) -> EndpointInfo:
        require_credentials()
        started = time.monotonic()
        parts = build_modal_parts(spec, bundle)
        on_event(DeployEvent("building the image and deploying to Modal", time.monotonic() - started))
        try:
            parts.app.deploy(name=modal_app_name(spec), strategy="rolling")
        except Exception as exc:
            raise DeployError(f"Modal refused the deploy of {spec.name}: {exc}") from exc
        url = parts.web.get_web_url() or ""
        self._deployed[spec.name] = (spec, bundle, url, time.time())
        on_event(DeployEvent("deployed", time.monotonic() - started))
        return self.info(spec.name)

    def _record(self, name: str) -> tuple[ServeSpec, CellBundle, str, float]:
        if name not in self._deployed:
            raise EndpointNotFoundError(
                f"no Modal endpoint named {name!r} was deployed from this kernel; "
                f"see `modal app list` for the apps of your account"
            )
        return self._deployed[name]

    def info(self, name: str) -> EndpointInfo:
        spec, bundle, url, deployed_at = self._record(name)
        return endpoint_info(self.name, spec, bundle, url, deployed_at, self.status(name))

    def _method(self, spec: ServeSpec) -> Any:
        """The deployed class's handler method: it sees every item, from HTTP and from Python."""
        require_credentials()
        service = modal.Cls.from_name(modal_app_name(spec), CLASS_NAME)
        return getattr(service(), service_method_name(spec))

    def status(self, name: str) -> EndpointStatus:
        spec, *_ = self._record(name)
        stats = self._method(spec).get_current_stats()
        replicas = ReplicaCounts(
            running=stats.num_total_runners, target=max(spec.replicas.min, stats.num_total_runners)
        )
        message = f"{stats.backlog} inputs waiting" if stats.backlog else ""
        return EndpointStatus(name, "running", replicas, message)

    def stats(self, name: str, window_s: float = DEFAULT_WINDOW_S) -> EndpointStats:
        """Modal's function statistics of the handler: inputs, failures and end-to-end latency."""
        spec, _, _, deployed_at = self._record(name)
        method = self._method(spec)
        now = datetime.now(timezone.utc)
        # Modal keeps statistics for at most seven days per query.
        born = max(datetime.fromtimestamp(deployed_at, timezone.utc), now - timedelta(days=7))
        return endpoint_stats(
            name,
            window_s,
            window=method.stats(since=now - timedelta(seconds=window_s), until=now),
            lifetime=method.stats(since=min(born, now - timedelta(seconds=1)), until=now),
            current=method.get_current_stats(),
            min_replicas=spec.replicas.min,
        )

    def list(self) -> list[EndpointInfo]:
        return [self.info(name) for name in sorted(self._deployed)]

    def _delete(self, name: str, *, force: bool) -> None:
        spec, *_ = self._record(name)
        require_credentials()
        modal.App.lookup(modal_app_name(spec)).stop()
        del self._deployed[name]

    def logs(self, name: str, tail: int = 200) -> str:
        """The app's most recent log lines (the web function's and the handler's containers)."""
        spec, *_ = self._record(name)
        require_credentials()
        return log_text(modal.App.lookup(modal_app_name(spec)).logs.tail(tail))

    def deployed_cell(self, name: str) -> tuple[ServeSpec, CellBundle]:
        spec, bundle, *_ = self._record(name)
        return spec, bundle

    def client(self, name: str) -> EndpointClient:
        spec, bundle, *_ = self._record(name)
        require_credentials()
        return ModalEndpointClient(modal_app_name(spec), service_method_name(spec), bundle.streams)
