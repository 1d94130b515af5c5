"""Engines in whole calls over the simulated Twilio carrier."""

import asyncio

import pytest

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


# The fake speaks a forced greeting over the scripted audio length, so the greeting
# must be as long as that audio for the heard share of its text to be realistic.
GREETING = "Welcome to Acme, " * 12


async def test_openai_realtime_tool_round_trip_and_barge_in_over_the_carrier():
    from patter_core import tool
    from tests.fakes.audio import mulaw, voiced

    looked_up = []

    @tool
    async def lookup_order(order_id: str) -> dict:
        """Find an order.

        Args:
            order_id: the order number
        """
        looked_up.append(order_id)
        return {"status": "shipped"}

    async with FakeOpenAIRealtime() as fake:
        fake.replies = [
            Reply(text=GREETING, audio_ms=4000),  # a long greeting to cut into
            Reply(tool="lookup_order", arguments={"order_id": "A-1042"}),
            Reply(text="It has shipped.", audio_ms=500),
        ]
        fake.caller_says = ["Wait, where is order A-1042?"]

        def agent(phone):  # type: ignore[no-untyped-def]
            engine = OpenAIRealtime(fake.key, base_url=fake.base_url)
            return phone.agent(engine=engine, first_message=GREETING, tools=[lookup_order])

        async with twilio_rig(agent) as rig:
            call = await rig.sim.inbound_call()
            await call.wait_heard(8000, timeout=10)  # one second of the greeting
            call.say(mulaw(voiced(900)))
            async with asyncio.timeout(20):
                while not any(
                    e.type == "transcript" and e.role == "agent" and "shipped" in e.text
                    for e in rig.seen
                ):
                    rig.seen.append(await rig.events.get())
            barge = next(e for e in rig.seen if e.type == "barge_in")
            assert call.clears >= 1
            truncation = fake.conns[0].truncations[0]
            assert abs(truncation["audio_end_ms"] - barge.heard_ms) <= 1
            assert (
                900 <= truncation["audio_end_ms"] < 4000
            )  # cut where the caller was, not at the end
            called = next(e for e in rig.seen if e.type == "tool.called")
            result = next(e for e in rig.seen if e.type == "tool.result")
            assert called.name == "lookup_order" and called.arguments == {"order_id": "A-1042"}
            assert result.result == {"status": "shipped"} and looked_up == ["A-1042"]
            outputs = [i for i in fake.conns[0].items if i.get("type") == "function_call_output"]
            assert outputs and "shipped" in outputs[0]["output"]
            agent_said = [e for e in rig.seen if e.type == "transcript" and e.role == "agent"]
            cut = agent_said[0]
            assert cut.interrupted and cut.text.startswith("Welcome to Acme")
            assert len(cut.text) < len(GREETING) * 0.8  # only what was heard
            await call.hangup()


async def test_openai_realtime_refused_key_ends_the_call_cleanly():
    async with FakeOpenAIRealtime(key="the-right-key") as fake:

        def agent(phone):  # type: ignore[no-untyped-def]
            return phone.agent(engine=OpenAIRealtime("a-wrong-key", base_url=fake.base_url))

        async with twilio_rig(agent) as rig:
            await rig.sim.inbound_call()
            ended = await rig.next_event("call.ended", timeout=15)
            assert ended.reason == "engine_error"
            errors = [e for e in rig.seen if e.type == "error"]
            assert errors and all("a-wrong-key" not in e.message for e in errors)


async def test_elevenlabs_convai_call_with_client_tool_and_barge_in_over_the_carrier():
    from patter_core import ElevenLabsConvAI, tool
    from tests.fakes.audio import mulaw, voiced
    from tests.fakes.elevenlabs_convai import FakeElevenLabsConvAI
    from tests.fakes.elevenlabs_convai import Reply as ConvReply

    looked_up = []

    @tool
    async def lookup_order(order_id: str) -> dict:
        """Find an order.

        Args:
            order_id: the order number
        """
        looked_up.append(order_id)
        return {"status": "shipped"}

    async with FakeElevenLabsConvAI() as fake:
        fake.first_message = ""
        fake.replies = [
            ConvReply(text=GREETING, audio_ms=4000, pace_s=0.1),  # a long answer to cut into
            ConvReply(tool="lookup_order", parameters={"order_id": "A-1042"}),
            ConvReply(text="It has shipped.", audio_ms=500),
        ]
        fake.caller_says = ["Hello?", "Wait, where is order A-1042?"]

        def agent(phone):  # type: ignore[no-untyped-def]
            engine = ElevenLabsConvAI(fake.key, agent_id=fake.agent_id, base_url=fake.base_url)
            return phone.agent(engine=engine, tools=[lookup_order])

        async with twilio_rig(agent) as rig:
            call = await rig.sim.inbound_call()
            call.say(mulaw(voiced(300)))
            await call.wait_heard(8000, timeout=10)  # one second of the long answer
            call.say(mulaw(voiced(900)))
            async with asyncio.timeout(20):
                while not any(
                    e.type == "transcript" and e.role == "agent" and "shipped" in e.text
                    for e in rig.seen
                ):
                    rig.seen.append(await rig.events.get())
            assert any(e.type == "barge_in" for e in rig.seen)
            caller = [e.text for e in rig.seen if e.type == "transcript" and e.role == "caller"]
            assert caller == ["Hello?", "Wait, where is order A-1042?"]
            agent_said = [e for e in rig.seen if e.type == "transcript" and e.role == "agent"]
            cut = agent_said[0]
            assert cut.interrupted and cut.text.startswith("Welcome to Acme")
            assert len(cut.text) < len(GREETING) * 0.8
            called = next(e for e in rig.seen if e.type == "tool.called")
            result = next(e for e in rig.seen if e.type == "tool.result")
            assert called.name == "lookup_order" and called.arguments == {"order_id": "A-1042"}
            assert result.result == {"status": "shipped"} and looked_up == ["A-1042"]
            sent = fake.conns[0].tool_results[0]
            assert "shipped" in sent["result"] and sent["is_error"] is False
            await call.wait_heard((1000 + 500) * 8, timeout=10)
            await call.hangup()
            ended = await rig.next_event("call.ended")
            assert ended.reason == "hangup"
            metrics = [e for e in rig.seen if e.type == "turn.metrics"]
            minutes = sum(m.cost.units.get("convai_seconds", 0.0) for m in metrics)
            assert minutes > 0
            engine_cost = sum(m.cost.realtime for m in metrics)
            assert engine_cost == pytest.approx(minutes / 60 * 0.10)


async def test_elevenlabs_convai_refused_key_ends_the_call_cleanly():
    from patter_core import ElevenLabsConvAI
    from tests.fakes.elevenlabs_convai import FakeElevenLabsConvAI

    async with FakeElevenLabsConvAI(key="the-right-key") as fake:

        def agent(phone):  # type: ignore[no-untyped-def]
            engine = ElevenLabsConvAI(
                "xi-wrong-key", agent_id=fake.agent_id, base_url=fake.base_url
            )
            return phone.agent(engine=engine)

        async with twilio_rig(agent) as rig:
            await rig.sim.inbound_call()
            ended = await rig.next_event("call.ended", timeout=15)
            assert ended.reason == "engine_error"
            errors = [e for e in rig.seen if e.type == "error"]
            assert errors and all("xi-wrong-key" not in e.message for e in errors)


async def test_openai_realtime_socket_dropped_mid_call_reconnects_then_ends_cleanly():
    async with FakeOpenAIRealtime() as fake:
        fake.replies = [
            Reply(text="Acme, hello.", audio_ms=400),
            Reply(text="On Sunday we", audio_ms=1000, drop_after_chunks=2),
            Reply(text="On Sunday we open at ten.", audio_ms=600),
            Reply(text="You are", audio_ms=1000, drop_after_chunks=1),
        ]
        fake.caller_says = ["When do you open on Sunday?", "Thanks"]

        def agent(phone):  # type: ignore[no-untyped-def]
            engine = OpenAIRealtime(fake.key, base_url=fake.base_url)
            return phone.agent(engine=engine, first_message="Acme, hello.")

        async with twilio_rig(agent) as rig:
            call = await rig.sim.inbound_call()
            await call.wait_heard(400 * 8, timeout=10)
            call.say(tone_mulaw(300, 0.4))
            async with asyncio.timeout(15):
                while not any(
                    e.type == "transcript" and e.role == "agent" and "ten" in e.text
                    for e in rig.seen
                ):
                    rig.seen.append(await rig.events.get())
            assert len(fake.conns) == 2, "one reconnect"
            replayed = [i for i in fake.conns[1].items if i.get("type") == "message"]
            assert replayed and replayed[0]["content"][0]["text"] == "Acme, hello."
            assert not any(e.type == "call.ended" for e in rig.seen)
            await call.wait_heard((400 + 600) * 8, timeout=10)
            call.say(tone_mulaw(300, 0.4))  # this reply drops the socket again
            ended = await rig.next_event("call.ended", timeout=15)
            assert ended.reason == "engine_error"
            assert len(fake.conns) == 2, "no second reconnect"
            errors = [e for e in rig.seen if e.type == "error"]
            assert errors and errors[-1].fatal and fake.key not in errors[-1].message


async def test_elevenlabs_convai_socket_dropped_mid_call_reconnects_then_ends_cleanly():
    from patter_core import ElevenLabsConvAI
    from tests.fakes.audio import mulaw, voiced
    from tests.fakes.elevenlabs_convai import FakeElevenLabsConvAI
    from tests.fakes.elevenlabs_convai import Reply as ConvReply

    async with FakeElevenLabsConvAI() as fake:
        fake.first_message = ""
        fake.replies = [
            ConvReply(text="Let me", audio_ms=1000, drop_after_chunks=1),
            ConvReply(text="We open at ten.", audio_ms=500),
            ConvReply(text="Bye", audio_ms=1000, drop_after_chunks=1),
        ]
        fake.caller_says = ["When do you open?", "When do you open?", "Thanks"]

        def agent(phone):  # type: ignore[no-untyped-def]
            engine = ElevenLabsConvAI(fake.key, agent_id=fake.agent_id, base_url=fake.base_url)
            return phone.agent(engine=engine)

        async with twilio_rig(agent) as rig:
            call = await rig.sim.inbound_call()
            call.say(mulaw(voiced(300)))
            async with asyncio.timeout(15):
                while len(fake.conns) < 2:
                    rig.seen.append(await rig.events.get())
            assert not any(e.type == "call.ended" for e in rig.seen)
            await fake.until(lambda f: bool(f.conns[1].initiation))
            call.say(mulaw(voiced(300)))
            async with asyncio.timeout(15):
                while not any(
                    e.type == "transcript" and e.role == "agent" and "ten" in e.text
                    for e in rig.seen
                ):
                    rig.seen.append(await rig.events.get())
            call.say(mulaw(voiced(300)))  # this reply drops the socket again
            ended = await rig.next_event("call.ended", timeout=15)
            assert ended.reason == "engine_error"
            assert len(fake.conns) == 2, "no second reconnect"


async def test_session_vad_reaches_a_brain_that_guards_turns_with_it():
    """The pipeline holds a turn open while the session's VAD hears the caller."""
    from patter_core.engines.echo import EchoEngine
    from tests.fakes.audio import mulaw, voiced

    heard: list[bool] = []

    class Guarded(EchoEngine):
        def create_brain(self) -> "Guarded":
            return Guarded()

        def caller_speaking(self, speaking: bool) -> None:
            heard.append(speaking)

    brain = Guarded()  # each call gets a copy; they all report into ``heard``

    def agent(phone):  # type: ignore[no-untyped-def]
        return phone.agent(engine=brain)

    async with twilio_rig(agent) as rig:
        call = await rig.sim.inbound_call()
        await rig.next_event("call.answered", timeout=10)
        call.say(mulaw(voiced(600)) + b"\xff" * 8 * 1000)  # speech, then a second of silence
        async with asyncio.timeout(10):
            while heard[:2] != [True, False]:
                await asyncio.sleep(0.02)
        await call.hangup()
