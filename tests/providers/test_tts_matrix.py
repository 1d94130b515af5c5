"""Every TTS × the Deepgram fake STT through a whole pipeline call over simulated Twilio.

The caller hears the greeting and the reply (µ-law, each provider's audio
converted once or not at all), the transcript carries both sides, and the
turn's cost counts the reply's characters.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from patter_core.events import BaseEvent, Transcript, TurnMetrics
from patter_core.providers.base import TTS
from patter_core.providers.stt import DeepgramSTT
from patter_core.providers.tts import (
    LMNTTTS,
    CartesiaTTS,
    ElevenLabsTTS,
    LocalTTS,
    OpenAITTS,
    RimeTTS,
)
from patter_core.testing import tone_mulaw
from tests.fakes.cartesia_tts import cartesia_server
from tests.fakes.deepgram import deepgram_server
from tests.fakes.lmnt_tts import lmnt_server
from tests.fakes.rime_tts import rime_server
from tests.fakes.servers import FakeServer
from tests.fakes.tts_http import elevenlabs_server, openai_server
from tests.fakes.tts_ws import chunk
from tests.twilio_harness import twilio_rig

GREETING = "Thanks for calling Acme."
CALLER = "hello there"  # what the Deepgram fake hears


@dataclass
class Case:
    server: Callable[[], FakeServer] | None
    make: Callable[[FakeServer | None], TTS]
    heard_ms: float  # agent audio per utterance, as the fake makes it (0: varies)
    passthrough: bytes = b""  # μ-law the fake sends that must reach the caller unchanged


def _url(fake: FakeServer | None, ws: bool = False) -> str:
    assert fake is not None
    return fake.ws_url if ws else fake.http_url


CASES = {
    # ElevenLabs fake: 50 × 320 bytes of μ-law, passed through untouched: 2 s.
    "elevenlabs": Case(
        elevenlabs_server,
        lambda f: ElevenLabsTTS("test-key", base_url=_url(f), output_format="ulaw_8000"),
        2000,
        bytes([5]) * 320,
    ),
    # OpenAI fake: 16000 bytes of 24 kHz PCM16, resampled once: 1/3 s.
    "openai": Case(
        openai_server, lambda f: OpenAITTS("test-key", base_url=f"{_url(f)}/v1"), 16000 / 48
    ),
    "local": Case(None, lambda f: LocalTTS(), 0),
    # The WebSocket fakes send 50 × 20 ms in the asked format: 1 s.
    "cartesia": Case(
        cartesia_server,
        lambda f: CartesiaTTS(
            "test-key", base_url=_url(f, ws=True), encoding="pcm_mulaw", sample_rate=8000
        ),
        1000,
        chunk(5, 160),
    ),
    "rime": Case(
        rime_server,
        lambda f: RimeTTS("test-key", base_url=_url(f, ws=True), audio_format="pcm"),
        1000,
    ),
    "lmnt": Case(
        lmnt_server,
        lambda f: LMNTTTS(
            "test-key", base_url=_url(f, ws=True), audio_format="ulaw", sample_rate=8000
        ),
        1000,
        chunk(5, 160),
    ),
}


@contextlib.asynccontextmanager
async def _maybe(server: Callable[[], FakeServer] | None) -> AsyncIterator[FakeServer | None]:
    if server is None:
        yield None
        return
    async with server() as fake:
        yield fake


def _reply(text: str) -> str:
    return f"You said {text}."


async def _until(rig: Any, done: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not done():
            item = await rig.events.get()
            if isinstance(item, BaseEvent):
                rig.seen.append(item)


@pytest.mark.parametrize("name", list(CASES))
async def test_tts_in_a_whole_call(name: str) -> None:
    case = CASES[name]
    async with deepgram_server(CALLER) as dg, _maybe(case.server) as fake:
        tts = case.make(fake)

        def agent(phone: Any) -> Any:
            # μ-law in: the fake ends a turn every 32000 bytes, so one turn per 4 s.
            stt = DeepgramSTT(dg.key, base_url=f"{dg.ws_url}/v1/listen", encoding="mulaw")
            return phone.agent(stt=stt, tts=tts, first_message=GREETING)

        try:
            async with twilio_rig(agent, serve_kwargs={"on_message": _reply}) as rig:
                call = await rig.sim.inbound_call()
                greeting_bytes = int(case.heard_ms * 8 * 0.98) or 4000
                await call.wait_heard(greeting_bytes, timeout=20)
                call.say(tone_mulaw(300, 1.0))
                want = _reply(CALLER)

                def transcripts(role: str) -> list[Transcript]:
                    return [
                        e
                        for e in rig.seen
                        if isinstance(e, Transcript) and e.role == role and e.final
                    ]

                def reply_turns() -> list[TurnMetrics]:
                    return [e for e in rig.seen if isinstance(e, TurnMetrics) and e.turn >= 1]

                await _until(
                    rig,
                    lambda: (
                        any(e.text == want for e in transcripts("agent")) and bool(reply_turns())
                    ),
                    timeout=30,
                )
                heard_before = len(call.heard)
                if case.heard_ms:  # greeting and reply, in full
                    await call.wait_heard(int(2 * case.heard_ms * 8 * 0.98), timeout=20)
                else:  # eSpeak: greeting and reply together are well over a second
                    await call.wait_heard(max(heard_before + 1, 8000), timeout=20)
                assert case.passthrough in bytes(call.heard)
                assert transcripts("caller")[0].text == CALLER
                cost = reply_turns()[0].cost
                assert cost.units.get("tts_characters") == len(want)
                assert cost.tts > 0
                await call.hangup()
                await rig.next_event("call.ended")
        finally:
            await tts.close()
