"""A local aiohttp server that fakes a provider: routes, recorded requests, behaviours."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    """What a fake observed, for tests to assert on."""

    headers: list[dict[str, str]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    connections: int = 0
    disconnected: bool = False


class FakeServer:
    """``mode``: ``normal``, ``error`` (provider error message/status), ``drop`` (close
    mid-stream), ``stall`` (stop answering), ``auth`` (reject the key)."""

    def __init__(
        self,
        routes: dict[str, tuple[str, Handler]],
        *,
        key: str = "test-key",
        cancel_handlers: bool = True,
    ) -> None:
        self.key = key
        # Off to see what a handler does after its peer vanishes, as patterd's server does.
        self._cancel_handlers = cancel_handlers
        self.mode = "normal"
        self.seen = Seen()
        self.app = web.Application()
        for path, (method, handler) in routes.items():
            self.app.router.add_route(method, path, handler)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._changed = asyncio.Event()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def record(self, request: web.Request) -> None:
        self.seen.connections += 1
        self.seen.headers.append(dict(request.headers))
        self.seen.queries.append(dict(request.query))
        self.poke()

    def text(self, data: str) -> None:
        self.seen.texts.append(data)
        self.poke()

    def poke(self) -> None:
        """Wake ``until()`` waiters: something was observed."""
        self._changed.set()

    async def until(self, predicate: Callable[[Seen], bool]) -> None:
        while not predicate(self.seen):
            self._changed.clear()
            await self._changed.wait()

    async def __aenter__(self) -> FakeServer:
        self._runner = web.AppRunner(self.app, handler_cancellation=self._cancel_handlers)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
