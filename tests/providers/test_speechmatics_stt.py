from __future__ import annotations

from typing import Any

import pytest

from patter_core.providers.stt import SpeechmaticsSTT
from tests.fakes.speechmatics_stt import speechmatics_server
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
