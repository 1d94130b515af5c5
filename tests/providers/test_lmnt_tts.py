from __future__ import annotations

import asyncio
from typing import Any

import pytest

from patter_core.audio.formats import MULAW_8K, PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError
from patter_core.providers.tts import LMNTTTS
from tests.fakes.lmnt_tts import lmnt_server
from tests.fakes.tts_ws import CHUNKS, WsTTSFake, chunk


def make(fake: WsTTSFake, key: str = "test-key", **kw: Any) -> LMNTTTS:
    return LMNTTTS(key, base_url=fake.ws_url, **kw)


@pytest.mark.parametrize(
    ("audio_format", "rate", "fmt"),
    [("ulaw", 8000, MULAW_8K), ("pcm_s16le", 16000, PCM16_16K)],
)
async def test_utterance_in_the_asked_format(
    audio_format: str, rate: int, fmt: AudioFormat
) -> None:
    async with (fake := lmnt_server()):
        tts = make(
            fake, voice="lily", model="blizzard", audio_format=audio_format, sample_rate=rate
        )
        assert tts.output_format == fmt
        audio = b"".join([c async for c in tts.synthesize("Hello there.")])
        assert len(audio) == CHUNKS * fmt.bytes_for_ms(20)
        assert tts.characters == len("Hello there.")
        setup, text, flush, finish = fake.seen.bodies
        assert setup == {
            "X-API-Key": "test-key",
            "lmnt-version": "1.1",
            "voice": "lily",
            "model": "blizzard",
            "format": audio_format,
            "sample_rate": rate,
            "language": "en",
        }
        assert text == {"type": "text", "text": "Hello there."}
        assert flush == {"type": "flush", "nonce": 1} and finish == {"type": "finish"}


async def test_the_utterance_ends_at_flush_complete_and_the_default_voice_is_leah() -> None:
    async with (fake := lmnt_server()):
        audio = b"".join([c async for c in make(fake).synthesize("Hi.")])
        assert len(audio) == CHUNKS * 640
        assert fake.seen.bodies[0]["voice"] == "leah" and "model" not in fake.seen.bodies[0]


async def test_ulaw_wav_header_is_cut_off_so_the_line_gets_bare_g711() -> None:
    async with (fake := lmnt_server()):
        tts = make(fake, audio_format="ulaw", sample_rate=8000)
        audio = b"".join([c async for c in tts.synthesize("Hi.")])
        assert not audio.startswith(b"RIFF") and b"WAVE" not in audio
        assert audio[:160] == chunk(0, 160) and len(audio) == CHUNKS * 160


async def test_provider_error_is_typed_and_bad_key_is_not_echoed() -> None:
    async with (fake := lmnt_server()):
        fake.mode = "error"
        with pytest.raises(ProviderError, match="voice not found") as info:
            [c async for c in make(fake).synthesize("x")]
        assert info.value.status == 404 and not info.value.retryable
        with pytest.raises(ProviderError) as info:
            [c async for c in make(fake, key="wrong-secret").synthesize("x")]
        assert str(info.value) == "lmnt: Invalid API key ***" and info.value.status == 401


@pytest.mark.parametrize("mode", ["drop", "abort"])
async def test_drop_mid_stream_is_a_retryable_error(mode: str) -> None:
    async with (fake := lmnt_server()):
        fake.mode = mode
        got = 0
        with pytest.raises(ProviderError, match="dropped") as info:
            async for c in make(fake).synthesize("x"):
                got += len(c)
        assert info.value.retryable and 0 < got < CHUNKS * 640


async def test_stall_times_out() -> None:
    async with (fake := lmnt_server()):
        fake.mode = "stall"
        with pytest.raises(ProviderError, match="stalled"):
            [c async for c in make(fake, read_timeout=0.2).synthesize("x")]


async def test_barge_in_hangs_up_and_stops_audio_at_once() -> None:
    async with (fake := lmnt_server()):
        agen = make(fake).synthesize("A long sentence to speak.")
        assert await agen.__anext__()
        await agen.aclose()
        async with asyncio.timeout(2):
            await fake.until(lambda seen: "u1" in fake.stopped and seen.disconnected)
        assert fake.sent["u1"] < CHUNKS
        assert {"type": "reset", "nonce": 2} in fake.seen.bodies


def test_options_are_checked_and_the_key_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LMNT_API_KEY", raising=False)
    with pytest.raises(ValueError, match="LMNT_API_KEY"):
        LMNTTTS()
    monkeypatch.setenv("LMNT_API_KEY", "env-key")
    assert LMNTTTS()._key == "env-key"
    with pytest.raises(ValueError, match="audio_format"):
        LMNTTTS("k", audio_format="mp3")
    with pytest.raises(ValueError, match="8000"):
        LMNTTTS("k", audio_format="ulaw", sample_rate=16000)
    with pytest.raises(ValueError, match="sample_rate"):
        LMNTTTS("k", sample_rate=22050)


def test_wav_header_split_byte_by_byte_and_bare_audio_passes() -> None:
    from patter_core.providers.tts.lmnt import _WavHeader
    from tests.fakes.lmnt_tts import ulaw_wav_header

    cut = _WavHeader()
    stream = ulaw_wav_header() + b"\x7f" * 10
    assert b"".join(cut.strip("lmnt", stream[i : i + 1]) for i in range(len(stream))) == (
        b"\x7f" * 10
    )
    bare = _WavHeader()
    assert bare.strip("lmnt", b"\x01\x02") + bare.strip("lmnt", b"\x03") == b"\x01\x02\x03"


def test_error_shapes_old_and_new_map_to_typed_errors() -> None:
    from patter_core.providers.tts.lmnt import _error

    limited = _error(
        "lmnt", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}, "k"
    )
    assert limited.status == 429 and limited.retryable and str(limited) == "lmnt: slow"
    down = _error("lmnt", {"type": "error", "error": {"type": "internal_server_error"}}, "k")
    assert down.status == 500 and down.retryable
    legacy = _error("lmnt", {"error": "bad voice"}, "k")
    assert legacy.status is None and not legacy.retryable and str(legacy) == "lmnt: bad voice"
