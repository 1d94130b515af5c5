"""Checks every streaming STT must pass against its fake; each vendor's test file runs them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.stt.ws import WsOptions, WsSTTStream
from tests.fakes.servers import FakeServer
from tests.fakes.ws_stt import TURN_BYTES

CHUNK = 640  # 20 ms of 16 kHz PCM16

Make = Callable[..., Any]  # (base_url, key=..., options=...) -> STT


async def push(stream: WsSTTStream, nbytes: int) -> None:
    for _ in range(nbytes // CHUNK):
        await stream.push_audio(bytes(CHUNK))


async def until_turn(stream: WsSTTStream) -> list[Transcription]:
    got: list[Transcription] = []
    async for item in stream.results():
        got.append(item)
        if item.end_of_turn:
            break
    return got


def turn_text(items: list[Transcription]) -> str:
    return " ".join(t.text for t in items if t.final and t.text)


async def utterance(fake: FakeServer, make: Make, expected: str) -> list[Transcription]:
    stream = await make(fake.ws_url).open("c1")
    await push(stream, TURN_BYTES)
    got = await until_turn(stream)
    await stream.close()
    assert not got[0].final and got[0].text == expected.split()[0]
    assert turn_text(got) == expected and got[-1].end_of_turn
    assert stream.audio_seconds == pytest.approx(1.0)
    await asyncio.wait_for(fake.until(lambda seen: seen.disconnected), timeout=2)
    assert fake.seen.texts  # the closing message reached the server
    return got


async def finalize(fake: FakeServer, make: Make, expected: str) -> None:
    stream = await make(fake.ws_url).open("c1")
    await push(stream, CHUNK * 5)
    await stream.finalize()
    got: list[Transcription] = []
    async for item in stream.results():
        got.append(item)
        if item.final and item.text:
            break
    await stream.close()
    assert turn_text(got) == expected


async def bad_key(fake: FakeServer, make: Make) -> ProviderError:
    """A wrong key fails at open (header auth) or on the first result (in-band auth)."""
    with pytest.raises(ProviderError) as info:
        stream = await make(fake.ws_url, key="wrong-secret").open("c1")
        try:
            await push(stream, CHUNK)
            async for _ in stream.results():
                pass
        finally:
            await stream.close()
    assert "wrong-secret" not in str(info.value)
    return info.value


async def provider_error(fake: FakeServer, make: Make, detail: str) -> None:
    fake.mode = "error"
    stream = await make(fake.ws_url).open("c1")
    await push(stream, CHUNK * 2)
    with pytest.raises(ProviderError, match=detail):
        async for _ in stream.results():
            pass
    await stream.close()


async def drop_reconnects(fake: FakeServer, make: Make, expected: str) -> None:
    fake.mode = "drop"
    stream = await make(fake.ws_url).open("c1")
    await push(stream, TURN_BYTES)
    await fake.until(lambda seen: seen.connections >= 2)
    await push(stream, TURN_BYTES)
    got = await until_turn(stream)
    await stream.close()
    assert turn_text(got) == expected and fake.seen.connections == 2


async def drop_fails(fake: FakeServer, make: Make) -> None:
    fake.mode = "drop"
    stream = await make(fake.ws_url, options=WsOptions(reconnects=0)).open("c1")
    await push(stream, TURN_BYTES)
    with pytest.raises(ProviderError, match="dropped"):
        async for _ in stream.results():
            pass
    await stream.push_audio(bytes(CHUNK))  # after the failure: ignored
    await stream.close()


async def stalled_close(fake: FakeServer, make: Make) -> None:
    """Close (barge-in / hang-up) against a server that stopped answering returns in time."""
    fake.mode = "stall"
    stream = await make(fake.ws_url, options=WsOptions(close_timeout=0.2)).open("c1")
    await push(stream, TURN_BYTES)
    await stream.close()
    assert [t async for t in stream.results()] == []
    assert fake.seen.audio_bytes > 0
