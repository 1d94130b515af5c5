"""The media receive loop over a real WebSocket: every way a stream can end is one LegStopped."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from patter_core.audio.formats import MULAW_8K
from patter_core.carriers.base import LegAudio, LegEvent, LegStarted, LegStopped
from patter_core.carriers.media import PacedOutput, close_leg
from patter_core.carriers.telnyx.leg import TelnyxLeg
from patter_core.carriers.twilio.leg import TwilioLeg
from tests.fakes.servers import FakeServer

START = {
    "twilio": '{"event":"start","streamSid":"MZ1","start":{"callSid":"CA1","streamSid":"MZ1"}}',
    "telnyx": '{"event":"start","stream_id":"s1","start":{"call_control_id":"v3:c1",'
    '"media_format":{"encoding":"PCMU","sample_rate":8000,"channels":1}}}',
}
MEDIA = {
    "twilio": '{"event":"media","streamSid":"MZ1","media":{"track":"inbound","payload":"////"}}',
    "telnyx": '{"event":"media","stream_id":"s1","media":{"track":"inbound","payload":"////"}}',
}


def _leg(kind: str, ws: web.WebSocketResponse, timeout: float) -> Any:
    if kind == "twilio":
        return TwilioLeg(ws, "c1", receive_timeout=timeout)
    return TelnyxLeg(ws, "c1", receive_timeout=timeout)


@asynccontextmanager
async def _stream(
    kind: str, timeout: float
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, asyncio.Queue[LegEvent | None]]]:
    """A server that runs one leg's receive loop, and a client socket playing the carrier."""
    seen: asyncio.Queue[LegEvent | None] = asyncio.Queue()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        leg = _leg(kind, ws, timeout)
        async for event in leg.events():
            seen.put_nowait(event)
        seen.put_nowait(None)  # the loop ended by itself
        await leg.close()
        return ws

    async with (
        FakeServer({"/media": ("GET", handler)}) as server,
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.ws_url}/media") as client,
    ):
        yield client, seen


async def _until_end(seen: asyncio.Queue[LegEvent | None]) -> list[LegEvent]:
    events: list[LegEvent] = []
    async with asyncio.timeout(10):
        while (event := await seen.get()) is not None:
            events.append(event)
    return events


def _stops(events: list[LegEvent]) -> list[LegStopped]:
    return [e for e in events if isinstance(e, LegStopped)]


@pytest.mark.parametrize("kind", ["twilio", "telnyx"])
async def test_a_silent_socket_is_closed_after_the_receive_timeout(kind: str) -> None:
    async with _stream(kind, timeout=0.5) as (client, seen):
        await client.send_str(START[kind])
        started = time.monotonic()
        for _ in range(10):  # 0.6 s of traffic keeps it alive past one timeout
            await client.send_str(MEDIA[kind])
            await asyncio.sleep(0.06)
        events = await _until_end(seen)  # then the carrier goes quiet
        waited = time.monotonic() - started
        assert isinstance(events[0], LegStarted)
        assert sum(isinstance(e, LegAudio) for e in events) == 10
        stops = _stops(events)
        assert len(stops) == 1 and stops[0].reason == "dropped"
        assert "nothing received for 0.5 s" in stops[0].detail
        assert 1.0 <= waited < 5.0, waited  # 0.6 s of traffic, then one timeout
        msg = await client.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


@pytest.mark.parametrize("kind", ["twilio", "telnyx"])
@pytest.mark.parametrize(
    ("ending", "reason"),
    [
        (lambda client, kind: client.send_str('{"event":"stop"}'), "hangup"),
        (lambda client, kind: client.close(), "dropped"),
    ],
    ids=["stop", "close-without-stop"],
)
async def test_each_ending_is_exactly_one_stop(
    kind: str, ending: Callable[[Any, str], Any], reason: str
) -> None:
    async with _stream(kind, timeout=30) as (client, seen):
        await client.send_str(START[kind])
        await client.send_str(MEDIA[kind])
        await ending(client, kind)
        events = await _until_end(seen)
        stops = _stops(events)
        assert len(stops) == 1 and stops[0].reason == reason
        assert isinstance(events[-1], LegStopped)


async def test_a_silent_peer_that_stopped_reading_is_cut_after_the_close_grace() -> None:
    """A dead peer leaves our writes undrained, so a close frame cannot go out either."""
    seen: asyncio.Queue[LegEvent | None] = asyncio.Queue()
    blocked = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        ws.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        async def keep_talking() -> None:  # the agent goes on speaking to nobody
            with contextlib.suppress(Exception):
                while True:
                    sent = asyncio.ensure_future(ws.send_bytes(bytes(16384)))
                    done, _ = await asyncio.wait([sent], timeout=0.2)
                    if not done:
                        blocked.set()  # the peer's buffers are full: writes wait for a drain
                    await sent

        talker = asyncio.create_task(keep_talking())
        leg = TwilioLeg(ws, "c1", receive_timeout=0.5)
        async for event in leg.events():
            seen.put_nowait(event)
        seen.put_nowait(None)
        talker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await talker
        return ws

    async with FakeServer({"/media": ("GET", handler)}, cancel_handlers=False) as server:
        _, writer = await _raw_websocket(server.port, "/media")
        writer.write(_masked_text_frame(START["twilio"]))
        started = time.monotonic()
        # From here the peer neither reads nor sends.
        events = await _until_end(seen)
        writer.transport.abort()
        waited = time.monotonic() - started
        assert blocked.is_set(), "the test did not fill the socket"
        stops = _stops(events)
        assert len(stops) == 1 and stops[0].reason == "dropped"
        assert "nothing received for 0.5 s" in stops[0].detail
        assert waited < 6.0, waited  # the timeout, then at most the close grace (2 s)


async def _raw_websocket(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client socket that completes the upgrade and then reads nothing (a dead peer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def _masked_text_frame(text: str) -> bytes:
    """One client-to-server text frame (RFC 6455: clients mask every frame)."""
    data = text.encode()
    assert len(data) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return bytes([0x81, 0x80 | len(data)]) + mask + body


async def test_closing_a_leg_whose_peer_stopped_reading_releases_the_connection() -> None:
    """The hang-up path: our close frame cannot drain, yet the connection must not linger."""
    closed: asyncio.Queue[float] = asyncio.Queue()
    blocked = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        ws.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        with contextlib.suppress(Exception):
            for _ in range(64):  # fill both buffers; the peer reads nothing
                sent = asyncio.ensure_future(ws.send_bytes(bytes(16384)))
                done, _ = await asyncio.wait([sent], timeout=0.2)
                if not done:
                    blocked.set()
                    sent.cancel()
                    break
        output = PacedOutput(MULAW_8K, _discard, _discard)
        started = time.monotonic()
        await close_leg(ws, output)
        closed.put_nowait(time.monotonic() - started)
        return ws

    async with FakeServer({"/media": ("GET", handler)}, cancel_handlers=False) as server:
        reader, writer = await _raw_websocket(server.port, "/media")
        took = await asyncio.wait_for(closed.get(), 10)
        assert blocked.is_set(), "the test did not fill the socket"
        assert took < 5.0, took  # the close grace, the cut, then a bounded wait

        # Read what was buffered: the stream must end, i.e. our side let go of it.
        async def drain() -> None:
            while await reader.read(65536):
                pass

        await asyncio.wait_for(drain(), 5)
        writer.close()


async def _discard(_: Any) -> None:
    return None
