from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
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
        tts = make(fake, voice="astra", model="mistv2", audio_format=audio_format, sample_rate=rate)
        assert tts.output_format == fmt
        audio = b"".join([c async for c in tts.synthesize("Hello there.")])
        assert len(audio) == CHUNKS * fmt.bytes_for_ms(20)
        assert tts.characters == len("Hello there.")
        query = fake.seen.queries[0]
        assert query == {
            "speaker": "astra",
            "modelId": "mistv2",
            "audioFormat": audio_format,
            "samplingRate": str(rate),
            "segment": "never",
        }
        text, flush, eos = fake.seen.bodies
        assert text["text"] == "Hello there." and text["contextId"]
        assert flush == {"operation": "flush"} and eos == {"operation": "eos"}


async def test_defaults_are_coda_and_a_coda_speaker() -> None:
    async with (fake := rime_server()):
        audio = b"".join([c async for c in make(fake).synthesize("Hi.")])
        assert len(audio) == CHUNKS * 640
        query = fake.seen.queries[0]
        assert query["modelId"] == "coda" and query["speaker"] == "lyra"
        assert query["audioFormat"] == "pcm" and query["samplingRate"] == "16000"


async def test_a_reply_of_several_sentences_is_spoken_whole() -> None:
    """Under Rime's default segmentation each sentence is a synthesis with its own
    ``done``; with ``segment=never`` and one flush the reply is one synthesis."""
    async with (fake := rime_server()):
        text = "Hello there. How can I help? Ask me anything!"
        audio = b"".join([c async for c in make(fake).synthesize(text)])
        assert len(audio) == CHUNKS * 640
        ctx = fake.seen.bodies[0]["contextId"]
        assert fake.sent[ctx] == CHUNKS


async def test_the_fake_splits_sentences_when_segmentation_is_left_to_rime() -> None:
    """The fake's own default: three sentences, three syntheses (and three ``done``)."""
    async with (fake := rime_server()):
        url = f"{fake.ws_url}/ws3?speaker=lyra&modelId=coda&audioFormat=pcm&samplingRate=16000"
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, headers={"Authorization": "Bearer test-key"}) as ws,
        ):
            await ws.send_json({"text": "One. Two? Three!", "contextId": "c"})
            done = 0
            while done < 3:
                event = await asyncio.wait_for(ws.receive_json(), 5)
                done += event["type"] == "done"
        assert fake.sent["c"] == 3 * CHUNKS


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
    with pytest.raises(ValueError, match="segment"):
        RimeTTS("k", options={"segment": "bySentence"})
