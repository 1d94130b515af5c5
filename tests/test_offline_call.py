"""A whole pipeline call with no network: LocalSTT + on_message + LocalTTS over simulated Twilio."""

import asyncio

from patter_core.demo import PHRASES, agent_finished_speaking, caller_audio, receptionist
from patter_core.providers.stt import LocalSTT
from patter_core.providers.tts import LocalTTS
from tests.twilio_harness import twilio_rig


def _agent(phone):
    return phone.agent(
        stt=LocalSTT(phrases=PHRASES),
        tts=LocalTTS(),
        first_message="Thanks for calling Acme. How can I help?",
    )


async def test_spoken_words_come_back_as_an_actionable_transcript_and_a_spoken_reply():
    async with twilio_rig(_agent, serve_kwargs={"on_message": receptionist}) as rig:
        call = await rig.sim.inbound_call()
        await agent_finished_speaking(call)
        greeting = len(call.heard)
        assert greeting > 8000  # more than a second of greeting reached the caller
        call.say(
            await caller_audio(LocalTTS(voice="en-us+m3"), "I would like to check my order status")
        )
        seen = []
        async with asyncio.timeout(40):
            while not any(
                e.type == "transcript" and e.role == "agent" and "A-1042" in e.text for e in seen
            ):
                item = await rig.events.get()
                seen.append(item)
        caller = [e for e in seen if e.type == "transcript" and e.role == "caller" and e.final]
        words = set(caller[-1].text.split())
        # Close enough to act on: the intent words are there (and the agent acted, above).
        assert words & {"order", "status"}
        assert len(words & {"i", "would", "like", "to", "check", "my", "order", "status"}) >= 4
        await agent_finished_speaking(call)
        assert len(call.heard) > greeting + 16000
        metrics = [e for e in seen if e.type == "turn.metrics" and e.turn == 1]
        assert metrics and metrics[0].latency.tts_first_byte_ms is not None
        await call.hangup()
