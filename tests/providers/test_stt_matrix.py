"""Every STT (against its fake) × the ElevenLabs TTS fake through a whole call over
simulated Twilio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from patter_core.demo import receptionist
from patter_core.providers import stt
from patter_core.providers.tts import ElevenLabsTTS
from patter_core.testing import tone_mulaw
from tests.fakes.assemblyai_stt import assemblyai_server
from tests.fakes.cartesia_stt import cartesia_server
from tests.fakes.deepgram import deepgram_server
from tests.fakes.servers import FakeServer
from tests.fakes.soniox_stt import soniox_server
from tests.fakes.speechmatics_stt import speechmatics_server
from tests.fakes.tts_http import elevenlabs_server
from tests.fakes.whisper_stt import whisper_server
from tests.twilio_harness import twilio_rig

SAID = "I would like to check my order status"

# name -> (fake server factory, build the STT from the fake's base address)
CASES: dict[str, tuple[Callable[[str], FakeServer], Callable[[FakeServer], Any]]] = {
    "deepgram": (
        deepgram_server,
        lambda f: stt.DeepgramSTT("test-key", base_url=f"{f.ws_url}/v1/listen"),
    ),
    "assemblyai": (
        assemblyai_server,
        lambda f: stt.AssemblyAISTT("test-key", base_url=f"{f.ws_url}/v3/ws"),
    ),
    "cartesia": (
        cartesia_server,
        lambda f: stt.CartesiaSTT("test-key", base_url=f"{f.ws_url}/stt/websocket"),
    ),
    "soniox": (
        soniox_server,
        lambda f: stt.SonioxSTT("test-key", base_url=f"{f.ws_url}/transcribe-websocket"),
    ),
    "speechmatics": (
        speechmatics_server,
        lambda f: stt.SpeechmaticsSTT("test-key", base_url=f"{f.ws_url}/v2"),
    ),
    "whisper": (whisper_server, lambda f: stt.WhisperSTT("test-key", base_url=f"{f.http_url}/v1")),
}


GREETING_MS = 2000  # the ElevenLabs fake speaks 2 s of µ-law per utterance


@pytest.mark.parametrize("name", sorted(CASES))
async def test_stt_in_a_whole_call(name: str) -> None:
    """The STT's transcript ends the caller's turn, the agent acts on it, the caller hears it.

    The fakes end a turn after each second of audio they receive, silence included, so
    the test waits for events rather than for the line to go quiet."""
    server, build = CASES[name]
    async with server(SAID) as fake, elevenlabs_server() as el:
        tts = ElevenLabsTTS("test-key", base_url=el.http_url, output_format="ulaw_8000")
        agent = lambda phone: phone.agent(  # noqa: E731
            stt=build(fake), tts=tts, first_message="Thanks for calling Acme."
        )
        try:
            async with twilio_rig(agent, serve_kwargs={"on_message": receptionist}) as rig:
                call = await rig.sim.inbound_call()
                call.say(tone_mulaw(300, 1.0))
                seen: list[Any] = []
                async with asyncio.timeout(30):
                    while not any(
                        e.type == "transcript" and e.role == "agent" and "A-1042" in e.text
                        for e in seen
                    ):
                        seen.append(await rig.events.get())
                finals = [
                    e for e in seen if e.type == "transcript" and e.role == "caller" and e.final
                ]
                assert finals and finals[0].text == SAID
                # The greeting and the reply both reach the caller.
                await call.wait_heard(2 * GREETING_MS * 8, timeout=20)
                metrics = [e for e in seen if e.type == "turn.metrics" and e.turn >= 1]
                assert metrics and metrics[0].cost.units.get("stt_seconds", 0) > 0
                await call.hangup()
            assert fake.seen.connections >= 1 and fake.seen.audio_bytes > 0
        finally:
            await tts.close()
