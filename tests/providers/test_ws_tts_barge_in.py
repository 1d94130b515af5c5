"""Barge-in through a real Pipeline: each WebSocket TTS stops its audio at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from patter_core.brain import AgentAudio
from patter_core.pipeline import Pipeline
from patter_core.providers.tts import LMNTTTS, CartesiaTTS, RimeTTS
from tests.fakes.cartesia_tts import cartesia_server
from tests.fakes.lmnt_tts import lmnt_server
from tests.fakes.rime_tts import rime_server
from tests.fakes.speech import ScriptedSTT
from tests.fakes.tts_ws import CHUNKS, WsTTSFake
from tests.pipeline.test_pipeline import started

VENDORS: list[tuple[Callable[[], WsTTSFake], Callable[[str], Any]]] = [
    (cartesia_server, lambda url: CartesiaTTS("test-key", base_url=url)),
    (rime_server, lambda url: RimeTTS("test-key", base_url=url)),
    (lmnt_server, lambda url: LMNTTTS("test-key", base_url=url)),
]


@pytest.mark.parametrize("vendor", VENDORS, ids=["cartesia", "rime", "lmnt"])
async def test_interrupt_stops_the_provider_and_the_audio(vendor: Any) -> None:
    server, make = vendor
    async with (fake := server()):
        tts = make(fake.ws_url)

        async def on_message(text: str) -> str:
            return "First sentence here. Second sentence is long."

        stt = ScriptedSTT()
        pipe = Pipeline(stt=stt, on_message=on_message, tts=tts)
        probe = await started(pipe)
        try:
            stt.stream.turn("hello")
            await asyncio.wait_for(
                probe.until(lambda items: any(isinstance(i, AgentAudio) for i in items)), 5
            )
            await pipe.interrupt(10.0)
            heard = len(probe.of(AgentAudio))
            async with asyncio.timeout(2):
                await fake.until(lambda _: bool(fake.stopped))
            await asyncio.sleep(0.3)  # the fakes would send ~30 more chunks by now
            assert len(probe.of(AgentAudio)) == heard
            assert all(fake.sent.get(u, 0) < CHUNKS for u in fake.stopped)
        finally:
            await probe.stop()
            await pipe.close()
            await tts.close()
