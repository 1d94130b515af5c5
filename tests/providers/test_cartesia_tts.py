from __future__ import annotations

import asyncio
from typing import Any

import pytest

from patter_core.audio.formats import MULAW_8K, PCM16_16K
from patter_core.providers.base import ProviderError
from patter_core.providers.tts import CartesiaTTS
from tests.fakes.cartesia_tts import cartesia_server
from tests.fakes.tts_ws import CHUNKS, WsTTSFake, chunk_bytes


def make(fake: WsTTSFake, key: str = "test-key", **kw: Any) -> CartesiaTTS:
    return CartesiaTTS(key, base_url=fake.ws_url, **kw)


@pytest.mark.parametrize(
    ("encoding", "rate", "fmt"),
    [("pcm_mulaw", 8000, MULAW_8K), ("pcm_s16le", 16000, PCM16_16K)],
)
async def test_utterance_in_the_asked_format(encoding: str, rate: int, fmt: Any) -> None:
    async with (fake := cartesia_server()):
        tts = make(fake, voice="v-1", encoding=encoding, sample_rate=rate)
        try:
            assert tts.output_format == fmt
            audio = b"".join([c async for c in tts.synthesize("Hello there.")])
            assert (
                len(audio) == CHUNKS * chunk_bytes(encoding, rate) == CHUNKS * fmt.bytes_for_ms(20)
            )
            assert tts.characters == len("Hello there.")
            req = fake.seen.bodies[0]
            assert req["transcript"] == "Hello there." and req["continue"] is False
            assert req["voice"] == {"mode": "id", "id": "v-1"}
            assert req["output_format"] == {
                "container": "raw",
                "encoding": encoding,
                "sample_rate": rate,
            }
            assert fake.seen.headers[0]["Cartesia-Version"]
        finally:
            await tts.close()


async def test_defaults_on_the_wire_are_a_current_model_voice_and_version() -> None:
    async with (fake := cartesia_server()):
        tts = make(fake)
        try:
            audio = b"".join([c async for c in tts.synthesize("Hi.")])
            assert len(audio) == CHUNKS * 640
            req = fake.seen.bodies[0]
            assert req["model_id"] == "sonic-3.5" and req["language"] == "en"
            assert req["voice"] == {"mode": "id", "id": "f786b574-daa5-4673-aa0c-cbe3e8534c02"}
            assert req["context_id"].startswith("patter-")
            headers = fake.seen.headers[0]
            assert headers["X-API-Key"] == "test-key"
            assert headers["Cartesia-Version"] == "2026-03-01"
        finally:
            await tts.close()


async def test_a_request_cartesia_would_refuse_fails_typed() -> None:
    async with (fake := cartesia_server()):
        tts = make(fake, voice="")
        try:
            with pytest.raises(ProviderError, match="Invalid request") as info:
                [c async for c in tts.synthesize("x")]
            assert info.value.status == 400 and not info.value.retryable
        finally:
            await tts.close()


async def test_concurrent_utterances_share_one_socket_by_context_id() -> None:
    async with (fake := cartesia_server()):
        tts = make(fake)
        try:

            async def run(text: str) -> bytes:
                return b"".join([c async for c in tts.synthesize(text)])

            a, b = await asyncio.gather(run("One."), run("Two."))
            assert len(a) == len(b) == CHUNKS * 640
            assert fake.seen.connections == 1
            ids = {req["context_id"] for req in fake.seen.bodies}
            assert len(ids) == 2
        finally:
            await tts.close()


async def test_provider_error_is_typed_and_bad_key_is_not_echoed() -> None:
    async with (fake := cartesia_server()):
        tts = make(fake)
        fake.mode = "error"
        with pytest.raises(ProviderError, match="Invalid voice") as info:
            [c async for c in tts.synthesize("x")]
        assert info.value.status == 400 and not info.value.retryable
        await tts.close()
        bad = make(fake, key="wrong-secret")
        with pytest.raises(ProviderError) as info:
            [c async for c in bad.synthesize("x")]
        assert info.value.status == 401 and "wrong-secret" not in str(info.value)


@pytest.mark.parametrize("mode", ["drop", "abort"])
async def test_drop_mid_stream_fails_cleanly_and_the_next_utterance_reconnects(mode: str) -> None:
    async with (fake := cartesia_server()):
        tts = make(fake)
        try:
            fake.mode = mode
            got = 0
            with pytest.raises(ProviderError, match="dropped") as info:
                async for c in tts.synthesize("x"):
                    got += len(c)
            assert info.value.retryable and 0 < got < CHUNKS * 640
            fake.mode = "normal"
            audio = b"".join([c async for c in tts.synthesize("again")])
            assert len(audio) == CHUNKS * 640 and fake.seen.connections == 2
        finally:
            await tts.close()


async def test_stall_times_out() -> None:
    async with (fake := cartesia_server()):
        tts = make(fake, read_timeout=0.2)
        fake.mode = "stall"
        try:
            with pytest.raises(ProviderError, match="stalled"):
                [c async for c in tts.synthesize("x")]
        finally:
            await tts.close()


async def test_barge_in_cancels_the_context_at_once() -> None:
    async with (fake := cartesia_server()):
        tts = make(fake)
        try:
            agen = tts.synthesize("A long sentence to speak.")
            assert await agen.__anext__()
            await agen.aclose()
            ctx = fake.seen.bodies[0]["context_id"]
            async with asyncio.timeout(2):
                await fake.until(lambda _: ctx in fake.stopped)
            assert {"context_id": ctx, "cancel": True} in fake.seen.bodies
            assert fake.sent[ctx] < CHUNKS
            # The socket stays up for the next reply.
            assert len(b"".join([c async for c in tts.synthesize("Next.")])) == CHUNKS * 640
            assert fake.seen.connections == 1
        finally:
            await tts.close()


def test_options_are_checked_and_the_key_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CARTESIA_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CARTESIA_API_KEY"):
        CartesiaTTS()
    monkeypatch.setenv("CARTESIA_API_KEY", "env-key")
    assert CartesiaTTS()._key == "env-key"
    with pytest.raises(ValueError, match="encoding"):
        CartesiaTTS("k", encoding="mp3")
    with pytest.raises(ValueError, match="sample_rate"):
        CartesiaTTS("k", sample_rate=11025)
