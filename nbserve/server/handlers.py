"""Thin authenticated Tornado handlers over ``EndpointService``.

Every method is ``@web.authenticated`` (and ``@authorized`` on the ``nbserve`` resource), so
the server starts with ``allow_unauthenticated_access=False`` without an auth warning and an
unauthenticated request is refused. Service calls block (SQLite, the monitor's pipe), so they
run in a thread: the event loop never waits on Ray. Errors become statuses in one table,
``STATUS_OF``, first match wins.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from tornado import web
from tornado.iostream import StreamClosedError

from nbserve._errors import ClusterError, EndpointInUseError, EndpointNotFoundError, MonitorError, NbserveError
from nbserve.server.service import EndpointService

__all__ = ["STATUS_OF", "EndpointHandler", "EndpointProxyHandler", "EndpointsHandler", "status_of"]

T = TypeVar("T")

STATUS_OF: tuple[tuple[type[NbserveError], int], ...] = (
    (EndpointNotFoundError, 404),
    (EndpointInUseError, 409),
    (MonitorError, 504),  # the monitor (our gateway to the cluster) did not answer in time
    (ClusterError, 503),
    (NbserveError, 502),  # the cluster answered with a failure
)


def status_of(error: NbserveError) -> int:
    return next(status for kind, status in STATUS_OF if isinstance(error, kind))


async def _off_loop(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))


class _Base(APIHandler):
    auth_resource = "nbserve"

    @property
    def service(self) -> EndpointService:
        service: EndpointService = self.settings["nbserve_service"]
        return service

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await _off_loop(function, *args, **kwargs)
        except NbserveError as exc:
            raise web.HTTPError(status_of(exc), reason=str(exc).splitlines()[0][:200]) from exc


class EndpointsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(json.dumps(await self.call(self.service.list)))


class EndpointHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.finish(json.dumps(await self.call(self.service.get, name)))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        force = self.get_argument("force", "0").lower() in ("1", "true", "yes")
        await self.call(self.service.delete, name, force=force)
        self.set_status(204)
        self.finish()


# Headers of the endpoint's answer that the caller needs; the rest (its server, its length:
# Tornado sets its own) stays behind.
_ANSWER_HEADERS = ("Content-Type", "Allow", "Retry-After", "Cache-Control", "WWW-Authenticate")
# Headers of the caller's request that the endpoint reads: the body's type, and whether the
# caller wants Server-Sent Events.
_FORWARDED_HEADERS = ("Content-Type", "Accept")
FORWARD_TIMEOUT_S = 600.0


class EndpointProxyHandler(JupyterHandler):
    """``<base_url>nbserve/endpoints/NAME[/PATH]``: an endpoint, through the Jupyter server.

    Where JupyterLab runs remotely (Binder, JupyterHub), the Jupyter server's port is the only
    one a browser or a teammate reaches. Jupyter's auth lets the caller in (its token, or the
    browser's session cookie, with Jupyter's XSRF check on POST); the server adds the
    endpoint's own token when it forwards, and passes on nothing of the caller's credentials.

    A route of nbserve's own rather than jupyter-server-proxy's: the proxy forwards a port and
    knows nothing of endpoints, so every user would need the endpoint's token as well as
    Jupyter's, and the port changes with the cluster. This server already knows each
    endpoint's address and the cluster's token (the sidebar's API), and it adds no package.
    """

    auth_resource = "nbserve"

    @property
    def service(self) -> EndpointService:
        service: EndpointService = self.settings["nbserve_service"]
        return service

    @web.authenticated
    @authorized
    async def get(self, name: str, path: str | None = None) -> None:
        await self._forward(name, path or "")

    @web.authenticated
    @authorized
    async def post(self, name: str, path: str | None = None) -> None:
        await self._forward(name, path or "")

    async def _forward(self, name: str, path: str) -> None:
        try:
            target = await _off_loop(self.service.target, name)
        except NbserveError as exc:
            self._error(status_of(exc), type(exc).__name__, str(exc))
            return
        headers = {
            key: self.request.headers[key] for key in _FORWARDED_HEADERS if key in self.request.headers
        }  # the caller's credentials (its Jupyter token, its cookies) stay here
        headers.setdefault("Content-Type", "application/json")
        if target.token is not None:
            headers["Authorization"] = f"Bearer {target.token}"
        body = self.request.body if self.request.method == "POST" else None
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        # aiohttp rather than Tornado's client: the answer is relayed as it comes, so a stream
        # (Server-Sent Events) reaches the caller chunk by chunk, and a caller that goes closes
        # the endpoint's connection, which stops the handler.
        begun = False
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with session.request(
                    self.request.method, target.url + path, data=body, headers=headers
                ) as answer:
                    self.set_status(answer.status)
                    for header in _ANSWER_HEADERS:
                        if header in answer.headers:
                            self.set_header(header, answer.headers[header])
                    async for chunk in answer.content.iter_any():
                        begun = True
                        self.write(chunk)
                        await self.flush()
            except aiohttp.ClientError as exc:
                if begun:
                    return  # the answer had begun: nothing more to say
                self._error(502, "EndpointUnreachable", f"{name} did not answer at {target.url}: {exc}")
                return
            except StreamClosedError:
                return  # the caller went
        self.finish()

    def _error(self, status: int, type_name: str, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"type": type_name, "message": message}}))
