"""A streaming-STT vendor that stops reading or goes silent must not hang the call.

``push_audio`` runs in the call's media loop: a send that never returns would stop
marks, DTMF, barge-in and hang-up from being read. The fakes really stop reading
(TCP backpressure fills the buffers) or stop answering pings.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from patter_core.providers.base import ProviderError
from patter_core.providers.stt import AssemblyAISTT, CartesiaSTT, SonioxSTT, SpeechmaticsSTT
from patter_core.providers.stt.ws import WsOptions, WsSTTStream
from tests.fakes.assemblyai_stt import assemblyai_server
from tests.fakes.cartesia_stt import cartesia_server
from tests.fakes.servers import FakeServer
from tests.fakes.soniox_stt import soniox_server
from tests.fakes.speechmatics_stt import speechmatics_server
from tests.fakes.ws_stt import TURN_BYTES
from tests.providers.stt_cases import push, turn_text, until_turn

TEXT = "hello there"
SECOND = 32000  # one second of 16 kHz PCM16: pushed at once, it fills buffers fast
FLOOD_CAP = 64 * 1024 * 1024  # more than loopback's kernel buffers ever hold
SEND_S = 0.2
HEARTBEAT_S = 0.4  # no pong within 0.2 s after 0.4 s without a frame
BOUND_S = 2.0  # far above the detection times, far below "forever"

VENDORS: dict[str, tuple[Callable[[str], FakeServer], Callable[..., Any]]] = {
    "cartesia": (
        cartesia_server,
        lambda url, **kw: CartesiaSTT("test-key", base_url=f"{url}/stt/websocket", **kw),
    ),
    "assemblyai": (
        assemblyai_server,
        lambda url, **kw: AssemblyAISTT("test-key", base_url=f"{url}/v3/ws", **kw),
    ),
    "soniox": (
        soniox_server,
        lambda url, **kw: SonioxSTT("test-key", base_url=f"{url}/transcribe-websocket", **kw),
    ),
    "speechmatics": (
        speechmatics_server,
        lambda url, **kw: SpeechmaticsSTT("test-key", base_url=f"{url}/v2", **kw),
    ),
}


async def flood(stream: WsSTTStream, done: Callable[[], bool]) -> float:
    """Push audio like a media loop (yielding between frames) until ``done``; the
    slowest push. Each push must return within ``BOUND_S``."""
    slowest = 0.0
    sent = 0
    while not done():
        assert sent < FLOOD_CAP, "the fake never stalled the client"
        started = time.monotonic()
        async with asyncio.timeout(BOUND_S):
            await stream.push_audio(bytes(SECOND))
        slowest = max(slowest, time.monotonic() - started)
        sent += SECOND
        await asyncio.sleep(0)
    return slowest


async def recovered(fake: FakeServer, stream: WsSTTStream) -> None:
    """The second connection transcribes: the call goes on."""
    await push(stream, TURN_BYTES)
    async with asyncio.timeout(BOUND_S):
        got = await until_turn(stream)
    assert turn_text(got) == TEXT and fake.seen.connections == 2


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_vendor_that_stops_reading_times_out_the_send_and_reconnects(vendor: str) -> None:
    server, make = VENDORS[vendor]
    async with server(TEXT) as fake:
        fake.mode = "deaf"  # the first connection stops reading at the first audio frame
        options = WsOptions(send_timeout=SEND_S, heartbeat_s=None)  # the send timeout alone
        stream = await make(fake.ws_url, options=options).open("c1")
        slowest = await flood(stream, lambda: fake.seen.connections >= 2)
        assert SEND_S <= slowest < SEND_S + 0.5  # one push waited out the timeout, no more
        await recovered(fake, stream)
        await stream.close()


async def test_vendor_that_stops_reading_fails_the_stream_without_reconnects() -> None:
    async with cartesia_server(TEXT) as fake:
        fake.mode = "deaf"
        options = WsOptions(send_timeout=SEND_S, heartbeat_s=None, reconnects=0)
        stream = await CartesiaSTT(
            "test-key", base_url=f"{fake.ws_url}/stt/websocket", options=options
        ).open("c1")
        ended = asyncio.Event()

        async def drain() -> None:
            try:
                async for _ in stream.results():
                    pass
            finally:
                ended.set()

        reader = asyncio.create_task(drain())
        await flood(stream, ended.is_set)
        with pytest.raises(ProviderError, match=r"connection dropped \(send timed out") as info:
            await reader
        assert info.value.retryable
        await stream.push_audio(bytes(SECOND))  # after the failure: ignored, returns at once
        async with asyncio.timeout(BOUND_S):
            await stream.close()
        fake.mode = "normal"  # let the fake drop its deaf connection
        fake.poke()


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_silent_vendor_is_caught_by_the_heartbeat_and_reconnects(vendor: str) -> None:
    server, make = VENDORS[vendor]
    async with server(TEXT) as fake:
        fake.mode = "silent"  # the first connection reads on but answers nothing, not pings
        stream = await make(fake.ws_url, options=WsOptions(heartbeat_s=HEARTBEAT_S)).open("c1")
        await push(stream, 640 * 5)
        started = time.monotonic()
        async with asyncio.timeout(BOUND_S):
            await fake.until(lambda seen: seen.connections >= 2)
        assert time.monotonic() - started < HEARTBEAT_S * 1.5 + 0.5
        await recovered(fake, stream)
        await stream.close()


async def test_silent_vendor_fails_the_stream_without_reconnects() -> None:
    async with cartesia_server(TEXT) as fake:
        fake.mode = "silent"
        options = WsOptions(heartbeat_s=HEARTBEAT_S, reconnects=0)
        stream = await CartesiaSTT(
            "test-key", base_url=f"{fake.ws_url}/stt/websocket", options=options
        ).open("c1")
        await push(stream, 640 * 5)
        with pytest.raises(ProviderError, match=r"connection dropped \(no pong"):
            async with asyncio.timeout(BOUND_S):
                async for _ in stream.results():
                    pass
        await stream.close()


async def test_healthy_vendor_answers_pings_and_keeps_one_connection() -> None:
    """The heartbeat does not drop a vendor that is merely quiet (it answers pings)."""
    async with cartesia_server(TEXT) as fake:
        stream = await CartesiaSTT(
            "test-key",
            base_url=f"{fake.ws_url}/stt/websocket",
            options=WsOptions(heartbeat_s=0.1),
        ).open("c1")
        await asyncio.sleep(0.6)  # several ping rounds with nothing else on the line
        await push(stream, TURN_BYTES)
        async with asyncio.timeout(BOUND_S):
            got = await until_turn(stream)
        await stream.close()
        assert turn_text(got) == TEXT and fake.seen.connections == 1
