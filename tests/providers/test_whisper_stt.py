from __future__ import annotations

import asyncio

import numpy as np
import pytest

from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.stt import WhisperSTT
from patter_core.providers.stt.whisper import WhisperSTTStream
from tests.fakes.whisper_stt import whisper_server

CHUNK = 640


def tone(ms: int) -> bytes:
    t = np.arange(16 * ms) / 16000
    return (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).tobytes()


def make(url: str, key: str = "test-key", **kw: object) -> WhisperSTT:
    return WhisperSTT(key, base_url=f"{url}/v1", **kw)  # type: ignore[arg-type]


async def speak(stream: WhisperSTTStream, speech_ms: int, quiet_ms: int) -> None:
    audio = tone(speech_ms) + bytes(32 * quiet_ms)
    for i in range(0, len(audio), CHUNK):
        await stream.push_audio(audio[i : i + CHUNK])


async def first(stream: WhisperSTTStream) -> Transcription:
    async with asyncio.timeout(5):
        async for item in stream.results():
            return item
    raise AssertionError("no result")


async def test_utterance_cut_on_silence() -> None:
    async with whisper_server() as fake:
        stream = await make(fake.http_url, silence_ms=300).open("c1")
        await speak(stream, 500, 400)
        got = await first(stream)
        await stream.close()
        assert got == Transcription("hello there", final=True, end_of_turn=True)
        assert fake.seen.headers[0]["Authorization"] == "Bearer test-key"
        assert fake.seen.bodies[0]["model"] == "whisper-1"
        assert fake.seen.bodies[0]["language"] == "en"
        assert fake.seen.audio_bytes >= 16000  # the speech went up as one WAV segment
        assert stream.audio_seconds == pytest.approx(0.9)


async def test_silence_alone_sends_nothing_and_finalize_cuts() -> None:
    async with whisper_server() as fake:
        stream = await make(fake.http_url, silence_ms=2000).open("c1")
        await speak(stream, 0, 500)
        await speak(stream, 400, 0)
        assert fake.seen.connections == 0
        await stream.finalize()
        got = await first(stream)
        await stream.close()
        assert got.text == "hello there" and got.end_of_turn
        assert fake.seen.connections == 1


async def test_bad_key_is_auth_error_without_the_key() -> None:
    async with whisper_server() as fake:
        stream = await make(fake.http_url, key="wrong-secret", silence_ms=200).open("c1")
        await speak(stream, 400, 300)
        with pytest.raises(ProviderError) as info:
            await first(stream)
        await stream.close()
        assert info.value.status == 401 and "wrong-secret" not in str(info.value)


async def test_provider_error_names_the_reason() -> None:
    async with whisper_server() as fake:
        fake.mode = "error"
        stream = await make(fake.http_url, silence_ms=200).open("c1")
        await speak(stream, 400, 300)
        with pytest.raises(ProviderError, match="Invalid file format") as info:
            await first(stream)
        await stream.close()
        assert info.value.status == 400 and not info.value.retryable


async def test_drop_mid_request_fails_cleanly() -> None:
    async with whisper_server() as fake:
        fake.mode = "drop"
        stream = await make(fake.http_url, silence_ms=200).open("c1")
        await speak(stream, 400, 300)
        with pytest.raises(ProviderError, match="request failed") as info:
            await first(stream)
        assert info.value.retryable
        await stream.push_audio(bytes(CHUNK))  # after the failure: ignored
        await stream.close()


async def test_stalled_request_times_out() -> None:
    async with whisper_server() as fake:
        fake.mode = "stall"
        stream = await make(fake.http_url, silence_ms=200, request_timeout=0.3).open("c1")
        await speak(stream, 400, 300)
        with pytest.raises(ProviderError, match="timed out"):
            await first(stream)
        await stream.close()


async def test_close_cancels_a_request_in_flight() -> None:
    async with whisper_server() as fake:
        fake.mode = "stall"
        stream = await make(fake.http_url, silence_ms=200).open("c1")
        await speak(stream, 400, 300)
        await asyncio.wait_for(fake.until(lambda seen: seen.connections == 1), timeout=2)
        await asyncio.wait_for(stream.close(), timeout=1)
        assert [t async for t in stream.results()] == []


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        WhisperSTT()
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert WhisperSTT().name == "whisper"
