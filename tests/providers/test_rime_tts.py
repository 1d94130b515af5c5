from __future__ import annotations

import asyncio
from typing import Any

import pytest

from patter_core.audio.formats import MULAW_8K, PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError
from patter_core.providers.tts import RimeTTS
from tests.fakes.rime_tts import rime_server
from tests.fakes.tts_ws import CHUNKS, WsTTSFake


def make(fake: WsTTSFake, key: str = "test-key", **kw: Any) -> RimeTTS:
    return RimeTTS(key, base_url=fake.ws_url, **kw)


@pytest.mark.parametrize(
    ("audio_format", "rate", "fmt"),
    [("mulaw", 8000, MULAW_8K), ("pcm", 16000, PCM16_16K)],
)
async def test_utterance_in_the_asked_format(
    audio_format: str, rate: int, fmt: AudioFormat
) -> None:
    async with (fake := rime_server()):
        tts = make(fake, voice="astra", model="arcana", audio_format=audio_format, sample_rate=rate)
        assert tts.output_format == fmt
        audio = b"".join([c async for c in tts.synthesize("Hello there.")])
        assert len(audio) == CHUNKS * fmt.bytes_for_ms(20)
        assert tts.characters == len("Hello there.")
        query = fake.seen.queries[0]
        assert query == {
            "speaker": "astra",
            "modelId": "arcana",
            "audioFormat": audio_format,
            "samplingRate": str(rate),
        }
        text, eos = fake.seen.bodies
        assert text["text"] == "Hello there." and text["contextId"]
        assert eos == {"operation": "eos"}


async def test_provider_error_is_typed_and_bad_key_is_not_echoed() -> None:
    async with (fake := rime_server()):
        fake.mode = "error"
        with pytest.raises(ProviderError, match="speaker not found"):
            [c async for c in make(fake).synthesize("x")]
        with pytest.raises(ProviderError) as info:
            [c async for c in make(fake, key="wrong-secret").synthesize("x")]
        assert info.value.status == 401 and "wrong-secret" not in str(info.value)


@pytest.mark.parametrize("mode", ["drop", "abort"])
async def test_drop_mid_stream_is_a_retryable_error(mode: str) -> None:
    async with (fake := rime_server()):
        fake.mode = mode
        got = 0
        with pytest.raises(ProviderError, match="dropped") as info:
            async for c in make(fake).synthesize("x"):
                got += len(c)
        assert info.value.retryable and 0 < got < CHUNKS * 640


async def test_stall_times_out() -> None:
    async with (fake := rime_server()):
        fake.mode = "stall"
        with pytest.raises(ProviderError, match="stalled"):
            [c async for c in make(fake, read_timeout=0.2).synthesize("x")]


async def test_barge_in_clears_and_stops_audio_at_once() -> None:
    async with (fake := rime_server()):
        agen = make(fake).synthesize("A long sentence to speak.")
        assert await agen.__anext__()
        await agen.aclose()
        ctx = fake.seen.bodies[0]["contextId"]
        async with asyncio.timeout(2):
            await fake.until(lambda seen: ctx in fake.stopped and seen.disconnected)
        assert fake.sent[ctx] < CHUNKS
        assert fake.seen.bodies[-1] == {"operation": "clear"}


def test_options_are_checked_and_the_key_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RIME_API_KEY", raising=False)
    with pytest.raises(ValueError, match="RIME_API_KEY"):
        RimeTTS()
    monkeypatch.setenv("RIME_API_KEY", "env-key")
    assert RimeTTS()._key == "env-key"
    with pytest.raises(ValueError, match="audio_format"):
        RimeTTS("k", audio_format="mp3")
    with pytest.raises(ValueError, match="8000"):
        RimeTTS("k", audio_format="mulaw", sample_rate=16000)
