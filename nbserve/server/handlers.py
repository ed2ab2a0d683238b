"""Thin authenticated Tornado handlers over ``EndpointService``.

Every method is ``@web.authenticated`` (and ``@authorized`` on the ``nbserve`` resource), so
the server starts with ``allow_unauthenticated_access=False`` without an auth warning and an
unauthenticated request is refused. Service calls block (SQLite, the monitor's pipe), so they
run in a thread: the event loop never waits on Ray.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from nbserve.server.service import EndpointService, ServiceError

__all__ = ["EndpointHandler", "EndpointsHandler"]

T = TypeVar("T")


class _Base(APIHandler):
    auth_resource = "nbserve"

    @property
    def service(self) -> EndpointService:
        service: EndpointService = self.settings["nbserve_service"]
        return service

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(None, lambda: function(*args, **kwargs))
        except ServiceError as exc:
            raise web.HTTPError(exc.status, reason=str(exc).splitlines()[0][:200]) from exc


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
