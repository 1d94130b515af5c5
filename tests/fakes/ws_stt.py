"""Shared engine for fake streaming-STT servers: modes, audio counting, turn cuts.

A vendor fake supplies a ``Vendor``: how the key is checked, what the server
says on the first audio, at a full turn, on a text control frame, and at close.

Besides ``FakeServer``'s modes, two hang the first connection (a reconnect finds
a healthy server): ``deaf`` stops reading the socket at the first audio frame, so
TCP backpressure stalls the client's sends; ``silent`` keeps reading but answers
nothing, not even pings (a hung vendor or a half-open path).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.servers import FakeServer

TURN_BYTES = 32000  # one second of 16 kHz PCM16 ends an utterance
DEAF_RCVBUF = 4096  # the deaf server's receive buffer: the client's sends stall sooner
HANG_MAX_S = 5.0  # a hung connection is dropped after this, so a failing test still ends

Msgs = list[Any]  # dicts go out as JSON, strings as text frames, a ``Close`` ends it


@dataclass(frozen=True)
class Close:
    """In a message list: close the socket with this code (the rest is not sent)."""

    code: int = 1000


@dataclass
class Vendor:
    path: str
    header_ok: Callable[[web.Request, str], bool]  # key in a header (or always True)
    first_ok: Callable[[str, str], bool] | None  # key/config in the first text frame
    auth_error: Callable[[], Msgs]  # sent on a bad key in the first frame, then close
    interim: Callable[[str], Msgs]
    turn: Callable[[str], Msgs]
    # (text, bytes since turn, words, audio frames on this connection) -> (out, close after)
    control: Callable[[str, int, str, int], tuple[Msgs, bool]]
    error: Msgs  # what the server says in ``error`` mode before closing
    ready: Callable[[], Msgs] = list  # sent once the session is configured
    audio: Callable[[int, int], Msgs] = lambda size, frames: []  # after each audio frame
    header_reject: Msgs | None = None  # bad header key: upgrade, say this (else HTTP 401)
    error_at_connect: bool = False  # ``error`` mode fails right after configuration
    drop: Msgs = field(default_factory=lambda: [Close(1011)])  # how ``drop`` mode ends it


def stt_server(vendor: Vendor, text: str = "hello there") -> FakeServer:
    async def handle(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        header_ok = vendor.header_ok(request, fake.key)
        if not header_ok and vendor.header_reject is None:
            return web.json_response({"error": "unauthorized"}, status=401)
        first = fake.seen.connections == 1
        deaf = fake.mode == "deaf" and first
        silent = fake.mode == "silent" and first
        if deaf:
            _shrink_receive_buffer(request)
        ws = web.WebSocketResponse(autoping=not silent)
        await ws.prepare(request)
        configured = vendor.first_ok is None
        got = 0
        frames = 0
        sent_interim = False

        async def send(msgs: Msgs) -> bool:
            """Send ``msgs``; False once a ``Close`` in them closed the socket."""
            for m in msgs:
                if isinstance(m, Close):
                    await ws.close(code=m.code)
                    return False
                await (ws.send_str(m) if isinstance(m, str) else ws.send_json(m))
            return True

        async def begin() -> bool:
            if fake.mode == "error" and vendor.error_at_connect:
                await send(vendor.error)
                await ws.close()
                return False
            return await send(vendor.ready())

        if not header_ok:
            assert vendor.header_reject is not None
            await send(vendor.header_reject)
            await ws.close()
        elif configured:
            await begin()

        if silent:
            await hang(request, read_silently(ws))
            return ws

        async for msg in ws:  # ends at once if the socket was closed above
            if msg.type is WSMsgType.TEXT:
                fake.text(msg.data)
                if not configured and vendor.first_ok is not None:
                    if not vendor.first_ok(msg.data, fake.key):
                        await send(vendor.auth_error())
                        await ws.close()
                        break
                    configured = True
                    if fake.mode == "error":
                        await send(vendor.error)
                        await ws.close()
                        break
                    if not await begin():
                        break
                    continue
                if fake.mode == "stall":
                    continue
                out, done = vendor.control(msg.data, got, text, frames)
                if out:
                    got = 0
                    sent_interim = False
                if not await send(out):
                    break
                if done:
                    await ws.close()
                    break
            elif msg.type is WSMsgType.BINARY:
                got += len(msg.data)
                frames += 1
                fake.seen.audio_bytes += len(msg.data)
                fake.poke()
                if deaf:  # never calls ``receive`` again; the client's sends back up
                    await hang(request, fake.until(lambda seen: moved_on()))
                    return ws
                if fake.mode == "error" and vendor.first_ok is None:
                    await send(vendor.error)
                    await ws.close()
                    break
                if fake.mode == "stall":
                    continue
                if not await send(vendor.audio(len(msg.data), frames)):
                    break
                if fake.mode == "drop" and first and got >= TURN_BYTES // 2:
                    await send(vendor.drop)
                    break
                if not sent_interim:
                    sent_interim = True
                    await send(vendor.interim(text.split()[0]))
                if got >= TURN_BYTES:
                    got = 0
                    sent_interim = False
                    await send(vendor.turn(text))
        fake.seen.disconnected = True
        fake.poke()
        return ws

    def moved_on() -> bool:
        """The client reconnected, or the test let the deaf connection go."""
        return fake.seen.connections >= 2 or fake.mode != "deaf"

    async def read_silently(ws: web.WebSocketResponse) -> None:
        """Read on (pings included, ``autoping`` is off), answer nothing."""
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                fake.seen.audio_bytes += len(msg.data)
                fake.poke()

    async def hang(request: web.Request, until: Awaitable[None]) -> None:
        """Keep the connection hung until ``until`` or ``HANG_MAX_S``, then reset it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANG_MAX_S):
                await until
        if request.transport is not None:
            request.transport.abort()
        fake.seen.disconnected = True
        fake.poke()

    fake = FakeServer({vendor.path: ("GET", handle)})
    return fake


def _shrink_receive_buffer(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DEAF_RCVBUF)


def is_json(data: str, **fields: Any) -> bool:
    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and all(parsed.get(k) == v for k, v in fields.items())
