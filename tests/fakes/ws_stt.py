"""Shared engine for fake streaming-STT servers: modes, audio counting, turn cuts.

A vendor fake supplies a ``Vendor``: how the key is checked, what the server
says on the first audio, at a full turn, on a text control frame, and at close.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.servers import FakeServer

TURN_BYTES = 32000  # one second of 16 kHz PCM16 ends an utterance

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
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = fake.seen.connections == 1
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

    fake = FakeServer({vendor.path: ("GET", handle)})
    return fake


def is_json(data: str, **fields: Any) -> bool:
    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and all(parsed.get(k) == v for k, v in fields.items())
