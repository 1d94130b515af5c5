from __future__ import annotations

import asyncio

import pytest

from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.stt import DeepgramSTT
from patter_core.providers.stt.ws import WsOptions
from tests.fakes.deepgram import TURN_BYTES, deepgram_server

CHUNK = 640  # 20 ms of 16 kHz PCM16


def make(url: str, key: str = "test-key", **kw: object) -> DeepgramSTT:
    return DeepgramSTT(key, base_url=f"{url}/v1/listen", **kw)  # type: ignore[arg-type]


async def push(stream: object, nbytes: int) -> None:
    for _ in range(nbytes // CHUNK):
        await stream.push_audio(bytes(CHUNK))  # type: ignore[attr-defined]


async def test_utterance_interim_final_end_of_turn() -> None:
    async with deepgram_server() as fake:
        stream = await make(fake.ws_url, endpointing_ms=250).open("c1")
        await push(stream, TURN_BYTES)
        got: list[Transcription] = []
        async for item in stream.results():
            got.append(item)
            if item.end_of_turn:
                break
        await stream.close()
        assert got[0] == Transcription("hello", final=False, confidence=0.97)
        assert got[-1].text == "hello there" and got[-1].final and got[-1].end_of_turn
        assert stream.audio_seconds == pytest.approx(1.0)
        q = fake.seen.queries[0]
        assert q["endpointing"] == "250" and q["encoding"] == "linear16"
        assert q["sample_rate"] == "16000" and q["interim_results"] == "true"
        assert fake.seen.headers[0]["Authorization"] == "Token test-key"
        assert '{"type":"CloseStream"}' in fake.seen.texts


async def test_finalize_and_mulaw() -> None:
    async with deepgram_server() as fake:
        stt = make(fake.ws_url, encoding="mulaw")
        assert stt.input_format.sample_rate == 8000
        stream = await stt.open("c1")
        await push(stream, CHUNK * 5)
        await stream.finalize()
        async for item in stream.results():
            if item.final:
                assert item.text == "hello there" and not item.end_of_turn
                break
        await stream.close()
        assert fake.seen.queries[0]["encoding"] == "mulaw"
        assert '{"type":"Finalize"}' in fake.seen.texts


async def test_keepalive_when_idle() -> None:
    async with deepgram_server() as fake:
        stream = await make(fake.ws_url, options=WsOptions(keepalive_s=0.05)).open("c1")
        await fake.until(lambda seen: '{"type":"KeepAlive"}' in seen.texts)
        await stream.close()


async def test_bad_key_is_auth_error_without_the_key() -> None:
    async with deepgram_server() as fake:
        with pytest.raises(ProviderError) as info:
            await make(fake.ws_url, key="wrong-secret").open("c1")
        assert info.value.status == 401 and not info.value.retryable
        assert "wrong-secret" not in str(info.value)


async def test_provider_error_at_handshake() -> None:
    async with deepgram_server() as fake:
        fake.mode = "error"
        with pytest.raises(ProviderError) as info:
            await make(fake.ws_url).open("c1")
        assert info.value.status == 400


async def test_drop_mid_stream_reconnects_once() -> None:
    async with deepgram_server() as fake:
        fake.mode = "drop"
        stream = await make(fake.ws_url).open("c1")
        await push(stream, TURN_BYTES)
        await fake.until(lambda seen: seen.connections >= 2)
        await push(stream, TURN_BYTES)
        async for item in stream.results():
            if item.end_of_turn:
                break
        await stream.close()
        assert fake.seen.disconnected and fake.seen.connections == 2


async def test_undecodable_audio_close_fails_without_a_reconnect() -> None:
    """A DATA-0000 close would repeat on a new connection with the same audio."""
    async with deepgram_server() as fake:
        fake.mode = "bad_audio"
        stream = await make(fake.ws_url).open("c1")
        await push(stream, CHUNK)
        with pytest.raises(ProviderError, match="audio rejected") as info:
            async for _ in stream.results():
                pass
        await stream.close()
    assert info.value.status == 1008 and fake.seen.connections == 1


async def test_drop_without_reconnect_fails_results() -> None:
    async with deepgram_server() as fake:
        fake.mode = "drop"
        stream = await make(fake.ws_url, options=WsOptions(reconnects=0)).open("c1")
        await push(stream, TURN_BYTES)
        with pytest.raises(ProviderError, match="dropped"):
            async for _ in stream.results():
                pass
        await stream.push_audio(bytes(CHUNK))  # after the failure: ignored, no crash
        await stream.close()


async def test_stalled_server_close_times_out_cleanly() -> None:
    async with deepgram_server() as fake:
        fake.mode = "stall"
        stream = await make(fake.ws_url, options=WsOptions(close_timeout=0.2)).open("c1")
        await push(stream, TURN_BYTES)
        await stream.close()
        assert [t async for t in stream.results()] == []
        assert fake.seen.audio_bytes > 0


async def test_connect_timeout_to_a_silent_port() -> None:
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stt = make(f"ws://127.0.0.1:{port}", options=WsOptions(connect_timeout=0.2))
        with pytest.raises(ProviderError, match="timed out"):
            await stt.open("c1")
    finally:
        server.close()


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPGRAM_API_KEY", raising=False)
    with pytest.raises(ValueError, match="DEEPGRAM_API_KEY"):
        DeepgramSTT()
    monkeypatch.setenv("DEEPGRAM_API_KEY", "from-env")
    assert DeepgramSTT().name == "deepgram"
