"""A real loopback HTTP receiver for webhook tests, and its `receiver` fixture.

An aiohttp server on a free 127.0.0.1 port that records every request and answers as the
test tells it: a status, a sequence of statuses, a delay, a redirect, or nothing at all
(`down()` stops listening; `up()` listens again on the same port).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

HOST = "127.0.0.1"
PATH = "/hook"


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it: raw body, headers and arrival times."""

    method: str
    path: str
    query_string: str
    headers: CIMultiDictProxy[str]
    body: bytes
    received_at: float  # time.time(), for comparing with signature timestamps
    received_monotonic: float  # time.monotonic(), for measuring gaps between attempts


class Receiver:
    """The server and its switchable behaviour; every setter applies to the next requests."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.port = 0
        self.status = 200
        self.statuses: deque[int] = deque()
        self.delay = 0.0
        self.redirect_location: str | None = None
        self.response_body = b"ok"
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        """The URL to post to (plain http on 127.0.0.1)."""
        return f"http://{HOST}:{self.port}{PATH}"

    def url_for(self, path: str) -> str:
        """The receiver's URL with another path (any path is recorded and answered)."""
        return f"http://{HOST}:{self.port}{path}"

    # --- behaviour -------------------------------------------------------------------------
    def respond_with(self, status: int = 200, body: bytes = b"ok", delay: float = 0.0) -> None:
        """Answer every request with `status` and `body` after `delay` seconds."""
        self.status, self.response_body, self.delay = status, body, delay
        self.statuses.clear()
        self.redirect_location = None

    def respond_sequence(self, *statuses: int) -> None:
        """Answer the next requests with these statuses in order, then with `status`."""
        self.statuses = deque(statuses)

    def redirect_to(self, location: str, status: int = 302) -> None:
        """Answer with a redirect to `location`."""
        self.respond_with(status=status, body=b"")
        self.redirect_location = location

    # --- lifecycle ---------------------------------------------------------------------------
    async def up(self) -> None:
        """Listen on the same port as before (a free one the first time)."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Handlers still sleeping when a test ends are cut short instead of awaited.
        runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, self.port))
            self.port = sock.getsockname()[1]
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner

    async def down(self) -> None:
        """Stop listening: connections to the port are refused until `up()`."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def wait_for_requests(self, count: int, within: float = 5.0) -> list[ReceivedRequest]:
        """Wait until at least `count` requests arrived; return them all."""
        async with asyncio.timeout(within):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.requests)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            ReceivedRequest(
                method=request.method,
                path=request.path,
                query_string=request.query_string,
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                body=body,
                received_at=time.time(),
                received_monotonic=time.monotonic(),
            )
        )
        self._arrived.set()
        status = self.statuses.popleft() if self.statuses else self.status
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = {"Location": self.redirect_location} if self.redirect_location else None
        return web.Response(status=status, body=self.response_body, headers=headers)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A started loopback receiver, stopped after the test."""
    server = Receiver()
    await server.up()
    try:
        yield server
    finally:
        await server.down()
