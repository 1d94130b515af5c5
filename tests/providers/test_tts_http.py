from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from patter_core.audio.formats import Encoding
from patter_core.providers.base import ProviderError
from patter_core.providers.tts import ElevenLabsTTS, OpenAITTS
from tests.fakes.servers import FakeServer
from tests.fakes.tts_http import CHUNK, CHUNKS, elevenlabs_server, openai_server

Vendor = tuple[Callable[[], FakeServer], Callable[..., Any]]


def eleven(fake: FakeServer, key: str = "test-key", **kw: Any) -> ElevenLabsTTS:
    return ElevenLabsTTS(key, base_url=fake.http_url, **kw)


def openai(fake: FakeServer, key: str = "test-key", **kw: Any) -> OpenAITTS:
    return OpenAITTS(key, base_url=f"{fake.http_url}/v1", **kw)


VENDORS = [
    pytest.param((elevenlabs_server, eleven), id="elevenlabs"),
    pytest.param((openai_server, openai), id="openai"),
]


@pytest.mark.parametrize("vendor", VENDORS)
async def test_streams_whole_utterance(vendor: Vendor) -> None:
    server, make = vendor
    async with server() as fake:
        tts = make(fake)
        audio = b"".join([c async for c in tts.synthesize("Hello there.")])
        assert len(audio) == CHUNK * CHUNKS
        assert tts.characters == len("Hello there.")


async def test_elevenlabs_request_shape_and_format() -> None:
    async with elevenlabs_server() as fake:
        tts = eleven(fake, voice_id="v123", output_format="ulaw_8000")
        assert tts.output_format.encoding is Encoding.MULAW
        assert tts.output_format.sample_rate == 8000
        [c async for c in tts.synthesize("Hi")]
        assert fake.seen.queries[0]["output_format"] == "ulaw_8000"
        assert fake.seen.bodies[0] == {
            "voice_id": "v123",
            "text": "Hi",
            "model_id": "eleven_flash_v2_5",
        }


async def test_openai_request_shape_and_format() -> None:
    async with openai_server() as fake:
        tts = openai(fake, voice="nova")
        assert tts.output_format.sample_rate == 24000
        [c async for c in tts.synthesize("Hi")]
        body = fake.seen.bodies[0]
        assert body["response_format"] == "pcm" and body["voice"] == "nova"
        assert fake.seen.headers[0]["Accept"] == "application/octet-stream"


@pytest.mark.parametrize("vendor", VENDORS)
async def test_close_iterator_stops_and_server_sees_disconnect(vendor: Vendor) -> None:
    server, make = vendor
    async with server() as fake:
        agen = make(fake).synthesize("A long sentence to speak.")
        first = await agen.__anext__()
        assert len(first) > 0
        await agen.aclose()
        await fake.until(lambda seen: seen.disconnected)


@pytest.mark.parametrize(
    ("vendor", "status", "message"),
    [
        pytest.param((elevenlabs_server, eleven), 422, "stability out of range", id="elevenlabs"),
        pytest.param((openai_server, openai), 400, "Input is too long", id="openai"),
    ],
)
async def test_provider_error_and_bad_key(vendor: Vendor, status: int, message: str) -> None:
    server, make = vendor
    async with server() as fake:
        fake.mode = "error"
        with pytest.raises(ProviderError, match=message) as info:
            [c async for c in make(fake).synthesize("x")]
        assert info.value.status == status and not info.value.retryable
        assert "{" not in str(info.value)  # the message, not the JSON around it
        with pytest.raises(ProviderError) as info:
            [c async for c in make(fake, key="wrong-secret").synthesize("x")]
        assert info.value.status == 401 and "wrong-secret" not in str(info.value)
        assert "***" in str(info.value)


def test_error_bodies_of_unknown_shape_pass_through() -> None:
    from patter_core.providers.tts.http_stream import error_message

    assert error_message("upstream timeout") == "upstream timeout"
    assert error_message("[1, 2]") == "[1, 2]"
    assert error_message('{"detail": "Not Found"}') == "Not Found"


async def test_elevenlabs_pcm_rates_the_sdk_lists() -> None:
    async with elevenlabs_server() as fake:
        for rate in (32000, 48000):
            tts = eleven(fake, output_format=f"pcm_{rate}")
            assert tts.output_format.sample_rate == rate
            assert tts.output_format.encoding is Encoding.PCM16
            assert len(b"".join([c async for c in tts.synthesize("Hi")])) == CHUNK * CHUNKS


async def test_openai_instructions_go_only_when_set() -> None:
    async with openai_server() as fake:
        tts = openai(fake, instructions="Speak warmly.")
        [c async for c in tts.synthesize("Hi")]
        body = fake.seen.bodies[0]
        assert body["model"] == "gpt-4o-mini-tts" and body["voice"] == "alloy"
        assert body["instructions"] == "Speak warmly." and body["speed"] == 1.0
        [c async for c in openai(fake).synthesize("Hi")]
        assert "instructions" not in fake.seen.bodies[1]


@pytest.mark.parametrize("vendor", VENDORS)
async def test_drop_mid_stream_is_a_retryable_error(vendor: Vendor) -> None:
    server, make = vendor
    async with server() as fake:
        fake.mode = "drop"
        got = 0
        with pytest.raises(ProviderError, match="dropped") as info:
            async for chunk in make(fake).synthesize("x"):
                got += len(chunk)
        assert info.value.retryable and 0 < got < CHUNK * CHUNKS


@pytest.mark.parametrize("vendor", VENDORS)
async def test_stall_times_out(vendor: Vendor) -> None:
    server, make = vendor
    async with server() as fake:
        fake.mode = "stall"
        with pytest.raises(ProviderError, match="stalled"):
            [c async for c in make(fake, read_timeout=0.2).synthesize("x")]


def test_missing_keys_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="ELEVENLABS_API_KEY"):
        ElevenLabsTTS()
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAITTS()
    with pytest.raises(ValueError, match="output_format"):
        ElevenLabsTTS("k", output_format="wav")


async def test_elevenlabs_premade_voice_names_become_their_ids() -> None:
    """The product docs write ``ElevenLabsTTS(voice_id="rachel")``; the API wants the id."""
    async with elevenlabs_server() as fake:
        for given, sent in (("rachel", "21m00Tcm4TlvDq8ikWAM"), ("Adam", "pNInz6obpgDQGcFmaJgB")):
            tts = eleven(fake, voice_id=given)
            assert b"".join([c async for c in tts.synthesize("Hi.")])
            assert fake.seen.bodies[-1]["voice_id"] == sent
        assert eleven(fake, voice_id="MyClonedVoice123").voice_id == "MyClonedVoice123"
