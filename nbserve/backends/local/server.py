"""The in-process backend's HTTP server: aiohttp on loopback, an adapter around the runtime's
HTTP contract (``nbserve.runtime.http.answer``), like the Ray replica's and Modal's."""

from __future__ import annotations

import socket
from collections.abc import Callable

from aiohttp import web

from nbserve._config import LOOPBACK
from nbserve.runtime import ServedCell
from nbserve.runtime.wire import HttpRequest, encode_json, error_body

__all__ = ["LocalServer"]


class LocalServer:
    """One server for every local endpoint of this process, routing by path.

    Runs on nbserve's background event loop, the loop the endpoints' batchers run on.
    """

    def __init__(self, resolve: Callable[[str], tuple[ServedCell, str] | None]) -> None:
        """``resolve(path)`` gives the endpoint whose route the path is in, and the rest of the path."""
        self._resolve = resolve
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int = 0) -> int:
        """Listen on ``127.0.0.1:port`` (0: a free port); return the port."""
        if self._runner is None:
            app = web.Application()
            app.router.add_route("*", "/{path:.*}", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, port))  # our own socket: the port is known even when 0 asked for any
            await web.SockSite(runner, sock).start()
            self.port = sock.getsockname()[1]
            self._runner = runner
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        found = self._resolve(request.path)
        if found is None:
            body = error_body("NotFound", f"no local endpoint at {request.path}")
            return web.Response(body=encode_json(body), status=404, content_type="application/json")
        served, rest = found

        async def read_body(limit: int) -> bytes:
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                chunk = await request.content.readany()
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)

        headers = {key.lower(): value for key, value in request.headers.items()}
        answer = await served.http(HttpRequest(request.method, headers, read_body, rest))
        if answer.chunks is None:
            return web.Response(body=answer.body, status=answer.status, headers=dict(answer.headers))
        response = web.StreamResponse(status=answer.status, headers=dict(answer.headers))
        try:
            await response.prepare(request)
            async for chunk in answer.chunks:  # each chunk leaves as soon as the handler yields it
                await response.write(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went: closing the chunks below stops the handler
        finally:
            await answer.chunks.aclose()
        return response
