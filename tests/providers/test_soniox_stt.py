from __future__ import annotations

import json
from typing import Any

import pytest

from patter_core.providers.base import ProviderError
from patter_core.providers.stt import SonioxSTT
from patter_core.providers.stt.ws import WsOptions
from tests.fakes.soniox_stt import soniox_server
from tests.providers import stt_cases as cases

TEXT = "hello there"


def make(url: str, key: str = "test-key", **kw: Any) -> SonioxSTT:
    return SonioxSTT(key, base_url=f"{url}/transcribe-websocket", **kw)


async def test_utterance() -> None:
    async with soniox_server(TEXT) as fake:
        await cases.utterance(fake, make, TEXT)


async def test_finalize() -> None:
    async with soniox_server(TEXT) as fake:
        await cases.finalize(fake, make, TEXT)


async def test_bad_key_is_typed_without_the_key() -> None:
    async with soniox_server(TEXT) as fake:
        await cases.bad_key(fake, make)


async def test_provider_error() -> None:
    async with soniox_server(TEXT) as fake:
        await cases.provider_error(fake, make, "Invalid model")


async def test_drop_mid_stream_reconnects_once() -> None:
    async with soniox_server(TEXT) as fake:
        await cases.drop_reconnects(fake, make, TEXT)


async def test_drop_without_reconnect_fails_results() -> None:
    async with soniox_server(TEXT) as fake:
        await cases.drop_fails(fake, make)


async def test_close_against_stalled_server_is_bounded() -> None:
    async with soniox_server(TEXT) as fake:
        await cases.stalled_close(fake, make)


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SONIOX_API_KEY", raising=False)
    with pytest.raises(ValueError, match="SONIOX_API_KEY"):
        SonioxSTT()
    monkeypatch.setenv("SONIOX_API_KEY", "from-env")
    assert SonioxSTT().name == "soniox"


async def test_config_frame_and_keepalive() -> None:
    async with soniox_server(TEXT) as fake:
        stream = await make(fake.ws_url, options=WsOptions(keepalive_s=0.05)).open("c1")
        await fake.until(lambda seen: '{"type":"keepalive"}' in seen.texts)
        await stream.close()
    config = json.loads(fake.seen.texts[0])
    assert config["model"] == "stt-rt-v5" and config["api_key"] == "test-key"
    assert config["audio_format"] == "pcm_s16le" and config["sample_rate"] == 16000
    assert config["num_channels"] == 1 and config["enable_endpoint_detection"] is True
    assert fake.seen.texts[-1] == ""  # the empty frame that ends the audio


async def test_bad_key_is_not_retryable() -> None:
    async with soniox_server(TEXT) as fake:
        exc = await cases.bad_key(fake, make)
    assert isinstance(exc, ProviderError) and exc.status == 401 and not exc.retryable
