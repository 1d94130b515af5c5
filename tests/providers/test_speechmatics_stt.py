from __future__ import annotations

import json
import time
from typing import Any

import pytest

from patter_core.providers.stt import SpeechmaticsSTT
from patter_core.providers.stt.ws import WsOptions
from tests.fakes.speechmatics_stt import speechmatics_server
from tests.fakes.ws_stt import TURN_BYTES
from tests.providers import stt_cases as cases

TEXT = "hello there"


def make(url: str, key: str = "test-key", **kw: Any) -> SpeechmaticsSTT:
    return SpeechmaticsSTT(key, base_url=f"{url}/v2", **kw)


async def test_utterance() -> None:
    async with speechmatics_server(TEXT) as fake:
        await cases.utterance(fake, make, TEXT)


async def test_finalize() -> None:
    async with speechmatics_server(TEXT) as fake:
        await cases.finalize(fake, make, TEXT)


async def test_bad_key_is_typed_without_the_key() -> None:
    async with speechmatics_server(TEXT) as fake:
        await cases.bad_key(fake, make)


async def test_provider_error() -> None:
    async with speechmatics_server(TEXT) as fake:
        await cases.provider_error(fake, make, "language not supported")


async def test_drop_mid_stream_reconnects_once() -> None:
    async with speechmatics_server(TEXT) as fake:
        await cases.drop_reconnects(fake, make, TEXT)


async def test_drop_without_reconnect_fails_results() -> None:
    async with speechmatics_server(TEXT) as fake:
        await cases.drop_fails(fake, make)


async def test_close_against_stalled_server_is_bounded() -> None:
    async with speechmatics_server(TEXT) as fake:
        await cases.stalled_close(fake, make)


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPEECHMATICS_API_KEY", raising=False)
    with pytest.raises(ValueError, match="SPEECHMATICS_API_KEY"):
        SpeechmaticsSTT()
    monkeypatch.setenv("SPEECHMATICS_API_KEY", "from-env")
    assert SpeechmaticsSTT().name == "speechmatics"


async def test_start_recognition_configures_partials_and_end_of_utterance() -> None:
    async with speechmatics_server(TEXT) as fake:
        stream = await make(fake.ws_url).open("c1")
        await fake.until(lambda seen: bool(seen.texts))
        await stream.close()
    start = json.loads(fake.seen.texts[0])
    assert fake.seen.headers[0]["Authorization"] == "Bearer test-key"
    assert start["audio_format"] == {"type": "raw", "encoding": "pcm_s16le", "sample_rate": 16000}
    config = start["transcription_config"]
    assert config["enable_partials"] is True and config["max_delay"] >= 0.7
    assert config["conversation_config"] == {"end_of_utterance_silence_trigger": 0.5}


async def test_close_after_a_reconnect_counts_only_the_new_connections_frames() -> None:
    """``last_seq_no`` restarts per connection; a stale count leaves the server waiting."""
    async with speechmatics_server(TEXT) as fake:
        fake.mode = "drop"
        stream = await make(fake.ws_url, options=WsOptions(close_timeout=3.0)).open("c1")
        await cases.push(stream, TURN_BYTES)
        await fake.until(lambda seen: seen.connections >= 2)
        await cases.push(stream, TURN_BYTES)
        await cases.until_turn(stream)
        started = time.monotonic()
        await stream.close()
        assert time.monotonic() - started < 1.0  # EndOfTranscript came, no close timeout
        eos = [json.loads(t) for t in fake.seen.texts if "EndOfStream" in t]
        assert len(eos) == 1 and 0 < eos[0]["last_seq_no"] <= TURN_BYTES // cases.CHUNK + 1
