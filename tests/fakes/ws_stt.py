"""Shared engine for fake streaming-STT servers: modes, audio counting, turn cuts.

A vendor fake supplies a ``Vendor``: how the key is checked, what the server
says on the first audio, at a full turn, on a text control frame, and at close.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.servers import FakeServer

TURN_BYTES = 32000  # one second of 16 kHz PCM16 ends an utterance

Msgs = list[Any]  # dicts go out as JSON, strings as text frames


@dataclass
class Vendor:
    path: str
    header_ok: Callable[[web.Request, str], bool]  # key in a header (or always True)
    first_ok: Callable[[str, str], bool] | None  # key/config in the first text frame
    auth_error: Callable[[], Msgs]  # sent on a bad key in the first frame, then close
    interim: Callable[[str], Msgs]
    turn: Callable[[str], Msgs]
    control: Callable[[str, int, str], tuple[Msgs, bool]]  # (text, bytes since turn, words)
    error: Msgs  # what the server says in ``error`` mode before closing


def stt_server(vendor: Vendor, text: str = "hello there") -> FakeServer:
    async def handle(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if not vendor.header_ok(request, fake.key):
            return web.json_response({"error": "unauthorized"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = fake.seen.connections == 1
        configured = vendor.first_ok is None
        got = 0
        sent_interim = False

        async def send(msgs: Msgs) -> None:
            for m in msgs:
                await (ws.send_str(m) if isinstance(m, str) else ws.send_json(m))

        async for msg in ws:
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
                    continue
                if fake.mode == "stall":
                    continue
                out, done = vendor.control(msg.data, got, text)
                if out:
                    got = 0
                    sent_interim = False
                await send(out)
                if done:
                    await ws.close()
                    break
            elif msg.type is WSMsgType.BINARY:
                got += len(msg.data)
                fake.seen.audio_bytes += len(msg.data)
                if fake.mode == "error" and vendor.first_ok is None:
                    await send(vendor.error)
                    await ws.close()
                    break
                if fake.mode == "stall":
                    continue
                if fake.mode == "drop" and first and got >= TURN_BYTES // 2:
                    await ws.close(code=1011, message=b"gone")
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
