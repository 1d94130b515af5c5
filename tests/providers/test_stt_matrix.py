"""Every STT (against its fake) × LocalTTS through a whole call over simulated Twilio."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from patter_core.demo import agent_finished_speaking, caller_audio, receptionist
from patter_core.providers import stt
from patter_core.providers.tts import LocalTTS
from tests.fakes.assemblyai_stt import assemblyai_server
from tests.fakes.cartesia_stt import cartesia_server
from tests.fakes.deepgram import deepgram_server
from tests.fakes.servers import FakeServer
from tests.fakes.soniox_stt import soniox_server
from tests.fakes.speechmatics_stt import speechmatics_server
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


@pytest.mark.parametrize("name", sorted(CASES))
async def test_stt_by_local_tts_whole_call(name: str) -> None:
    server, build = CASES[name]
    async with server(SAID) as fake:
        agent = lambda phone: phone.agent(  # noqa: E731
            stt=build(fake), tts=LocalTTS(), first_message="Thanks for calling Acme."
        )
        async with twilio_rig(agent, serve_kwargs={"on_message": receptionist}) as rig:
            call = await rig.sim.inbound_call()
            await agent_finished_speaking(call)
            greeting = len(call.heard)
            call.say(await caller_audio(LocalTTS(voice="en-us+m3"), SAID))
            seen: list[Any] = []
            async with asyncio.timeout(30):
                while not any(
                    e.type == "transcript" and e.role == "agent" and "A-1042" in e.text
                    for e in seen
                ):
                    seen.append(await rig.events.get())
            caller = [e for e in seen if e.type == "transcript" and e.role == "caller" and e.final]
            assert caller and caller[-1].text == SAID
            await agent_finished_speaking(call)
            assert len(call.heard) > greeting + 8000  # the reply was spoken to the caller
            await call.hangup()
        assert fake.seen.connections >= 1 and fake.seen.audio_bytes > 0
