from __future__ import annotations

from typing import Any

import pytest

from patter_core.providers.base import ProviderError
from patter_core.providers.stt import CartesiaSTT
from tests.fakes.cartesia_stt import cartesia_server
from tests.providers import stt_cases as cases

TEXT = "hello there"


def make(url: str, key: str = "test-key", **kw: Any) -> CartesiaSTT:
    return CartesiaSTT(key, base_url=f"{url}/stt/websocket", **kw)


async def test_utterance() -> None:
    async with cartesia_server(TEXT) as fake:
        await cases.utterance(fake, make, TEXT)


async def test_finalize() -> None:
    async with cartesia_server(TEXT) as fake:
        await cases.finalize(fake, make, TEXT)


async def test_bad_key_is_typed_without_the_key() -> None:
    async with cartesia_server(TEXT) as fake:
        await cases.bad_key(fake, make)


async def test_provider_error() -> None:
    async with cartesia_server(TEXT) as fake:
        await cases.provider_error(fake, make, "unsupported sample rate")


async def test_drop_mid_stream_reconnects_once() -> None:
    async with cartesia_server(TEXT) as fake:
        await cases.drop_reconnects(fake, make, TEXT)


async def test_drop_without_reconnect_fails_results() -> None:
    async with cartesia_server(TEXT) as fake:
        await cases.drop_fails(fake, make)


async def test_close_against_stalled_server_is_bounded() -> None:
    async with cartesia_server(TEXT) as fake:
        await cases.stalled_close(fake, make)


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTESIA_API_KEY", raising=False)
    with pytest.raises(ValueError, match="CARTESIA_API_KEY"):
        CartesiaSTT()
    monkeypatch.setenv("CARTESIA_API_KEY", "from-env")
    assert CartesiaSTT().name == "cartesia"


async def test_error_message_keeps_its_status_code() -> None:
    async with cartesia_server(TEXT) as fake:
        fake.mode = "error"
        stream = await make(fake.ws_url).open("c1")
        await cases.push(stream, cases.CHUNK * 2)
        with pytest.raises(ProviderError, match="unsupported sample rate") as info:
            async for _ in stream.results():
                pass
        await stream.close()
    assert info.value.status == 400 and not info.value.retryable
    query = fake.seen.queries[0]
    assert query == {
        "model": "ink-whisper",
        "language": "en",
        "encoding": "pcm_s16le",
        "sample_rate": "16000",
    }
    assert fake.seen.headers[0]["Cartesia-Version"] == "2025-04-16"
