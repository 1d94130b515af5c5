"""Engines in whole calls over the simulated Twilio carrier."""

import asyncio

from patter_core import OpenAIRealtime
from patter_core.testing import tone_mulaw
from tests.fakes.openai_realtime import FakeOpenAIRealtime, Reply
from tests.twilio_harness import twilio_rig


async def test_openai_realtime_call_streams_mulaw_both_ways_with_transcripts_and_cost():
    async with FakeOpenAIRealtime() as fake:
        fake.replies = [Reply(text="Acme, hello.", audio_ms=400), Reply("It ships today.", 600)]
        fake.caller_says = ["Where is my order?"]

        def agent(phone):  # type: ignore[no-untyped-def]
            engine = OpenAIRealtime(fake.key, base_url=fake.base_url)
            return phone.agent(engine=engine, first_message="Acme, hello.")

        async with twilio_rig(agent) as rig:
            call = await rig.sim.inbound_call()
            await call.wait_heard(400 * 8, timeout=10)  # the greeting, µ-law untouched
            call.say(tone_mulaw(300, 0.4))
            async with asyncio.timeout(15):
                while not any(
                    e.type == "transcript" and e.role == "agent" and "ships" in e.text
                    for e in rig.seen
                ):
                    rig.seen.append(await rig.events.get())
            caller = [e for e in rig.seen if e.type == "transcript" and e.role == "caller"]
            assert caller[-1].text == "Where is my order?"
            assert fake.conns[0].session, "the session was configured"
            await call.wait_heard((400 + 600) * 8, timeout=10)
            metrics = [e for e in rig.seen if e.type == "turn.metrics"]
            assert metrics and metrics[-1].total_cost > 0
            await call.hangup()
            ended = await rig.next_event("call.ended")
            assert ended.reason == "hangup"
