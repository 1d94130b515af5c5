from __future__ import annotations

from typing import Any

import pytest

from patter_core.providers.stt import AssemblyAISTT
from tests.fakes.assemblyai_stt import assemblyai_server
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
    async with assemblyai_server(TEXT) as fake:
        await cases.bad_key(fake, make)


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
