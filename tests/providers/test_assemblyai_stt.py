from __future__ import annotations

from typing import Any

import pytest

from patter_core.providers.stt import AssemblyAISTT
from patter_core.providers.stt.ws import WsOptions
from tests.fakes.assemblyai_stt import assemblyai_server
from tests.fakes.ws_stt import TURN_BYTES
from tests.providers import stt_cases as cases

TEXT = "Hello there"


def make(url: str, key: str = "test-key", **kw: Any) -> AssemblyAISTT:
    return AssemblyAISTT(key, base_url=f"{url}/v3/ws", **kw)


async def test_utterance() -> None:
    async with assemblyai_server(TEXT) as fake:
        await cases.utterance(fake, make, TEXT)


async def test_finalize() -> None:
    async with assemblyai_server(TEXT) as fake:
        await cases.finalize(fake, make, TEXT)


async def test_bad_key_is_typed_without_the_key() -> None:
    """The key is checked after the upgrade: an Error frame, then close code 1008."""
    async with assemblyai_server(TEXT) as fake:
        exc = await cases.bad_key(fake, make)
    assert exc.status == 1008 and "authentication failed" in str(exc) and not exc.retryable


async def test_provider_error() -> None:
    async with assemblyai_server(TEXT) as fake:
        await cases.provider_error(fake, make, "Invalid Sample Rate")


async def test_drop_mid_stream_reconnects_once() -> None:
    async with assemblyai_server(TEXT) as fake:
        await cases.drop_reconnects(fake, make, TEXT)


async def test_drop_without_reconnect_fails_results() -> None:
    async with assemblyai_server(TEXT) as fake:
        await cases.drop_fails(fake, make)


async def test_close_against_stalled_server_is_bounded() -> None:
    async with assemblyai_server(TEXT) as fake:
        await cases.stalled_close(fake, make)


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSEMBLYAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ASSEMBLYAI_API_KEY"):
        AssemblyAISTT()
    monkeypatch.setenv("ASSEMBLYAI_API_KEY", "from-env")
    assert AssemblyAISTT().name == "assemblyai"


async def test_audio_goes_in_frames_of_50_ms() -> None:
    """The service closes with 3007 on frames under 50 ms; 20 ms pushes are regrouped."""
    async with assemblyai_server(TEXT) as fake:
        stream = await make(fake.ws_url).open("c1")
        await cases.push(stream, cases.CHUNK * 7)  # 140 ms: two 50 ms frames, 40 ms held
        await fake.until(lambda seen: seen.audio_bytes >= 3200)
        await cases.push(stream, cases.CHUNK * 3)  # 200 ms in all: four frames
        await fake.until(lambda seen: seen.audio_bytes >= 6400)
        assert fake.seen.audio_bytes == 6400 and not fake.seen.disconnected
        await stream.close()
    assert fake.seen.queries[0] == {
        "sample_rate": "16000",
        "encoding": "pcm_s16le",
        "speech_model": "universal-streaming-english",
        "format_turns": "true",
    }


async def test_keepalive_while_no_audio_flows() -> None:
    async with assemblyai_server(TEXT) as fake:
        stream = await make(fake.ws_url, options=WsOptions(keepalive_s=0.05)).open("c1")
        await fake.until(lambda seen: '{"type":"KeepAlive"}' in seen.texts)
        await cases.push(stream, TURN_BYTES)  # the session is still good after it
        got = await cases.until_turn(stream)
        await stream.close()
    assert cases.turn_text(got) == TEXT
