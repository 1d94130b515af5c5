"""Engines in whole calls over the simulated Twilio carrier."""

import asyncio

import pytest

from patter_core import OpenAIRealtime
from patter_core.testing import tone_mulaw
from tests.fakes.openai_realtime import FakeOpenAIRealtime, Reply
from tests.twilio_harness import twilio_rig

DEFAULT_APOLOGY_START = "Sorry"


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

    greeting = ("Welcome to Acme, " * 12).strip()
    async with FakeOpenAIRealtime() as fake:
        fake.replies = [
            Reply(text=greeting, audio_ms=4000),  # a long greeting to cut into
            Reply(tool="lookup_order", arguments={"order_id": "A-1042"}),
            Reply(text="It has shipped.", audio_ms=500),
        ]
        fake.caller_says = ["Wait, where is order A-1042?"]

        def agent(phone):  # type: ignore[no-untyped-def]
            engine = OpenAIRealtime(fake.key, base_url=fake.base_url)
            return phone.agent(engine=engine, first_message=greeting, tools=[lookup_order])

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
            # The cut greeting is published as what the caller heard of it, marked interrupted.
            cut = [
                e
                for e in rig.seen
                if e.type == "transcript" and e.role == "agent" and e.interrupted
            ]
            assert len(cut) == 1, [e for e in rig.seen if e.type == "transcript"]
            heard = cut[0].text
            assert heard and greeting.startswith(heard) and len(heard) < len(greeting)
            expected_chars = len(greeting) * truncation["audio_end_ms"] / 4000
            assert abs(len(heard) - expected_chars) <= len("Welcome to Acme,") + 1
            await call.hangup()


async def _apology() -> bytes:
    from patter_core.audio.formats import AudioFormat, Encoding
    from patter_core.session.apology import apology_clip
    from patter_core.session.config import DEFAULT_APOLOGY

    return await apology_clip(DEFAULT_APOLOGY, AudioFormat(Encoding.MULAW, 8000))


def _apology_transcripts(rig):  # type: ignore[no-untyped-def]
    from patter_core.session.config import DEFAULT_APOLOGY

    return [e for e in rig.seen if e.type == "transcript" and e.text == DEFAULT_APOLOGY]


def _wrong_key_agent(fake: FakeOpenAIRealtime, **kw):  # type: ignore[no-untyped-def]
    def agent(phone):  # type: ignore[no-untyped-def]
        return phone.agent(engine=OpenAIRealtime("a-wrong-key", base_url=fake.base_url), **kw)

    return agent


async def test_openai_realtime_refused_key_ends_the_call_cleanly_after_an_apology():
    clip = await _apology()
    async with (
        FakeOpenAIRealtime(key="the-right-key") as fake,
        twilio_rig(_wrong_key_agent(fake, first_message="Hello!")) as rig,
    ):
        call = await rig.sim.inbound_call()
        ended = await rig.next_event("call.ended", timeout=15)
        assert ended.reason == "engine_error"
        errors = [e for e in rig.seen if e.type == "error"]
        assert errors and all("a-wrong-key" not in e.message for e in errors)
        # The caller heard the canned apology, all of it and nothing else, before the end.
        assert bytes(call.heard) == clip
        said = _apology_transcripts(rig)
        assert len(said) == 1 and said[0].role == "agent" and not said[0].interrupted


async def test_an_empty_apology_ends_a_failed_call_in_silence():
    async with (
        FakeOpenAIRealtime(key="the-right-key") as fake,
        twilio_rig(_wrong_key_agent(fake, apology="")) as rig,
    ):
        call = await rig.sim.inbound_call()
        ended = await rig.next_event("call.ended", timeout=15)
        assert ended.reason == "engine_error"
        assert call.media_received == 0 and not _apology_transcripts(rig)


async def test_a_caller_who_hangs_up_during_the_apology_ends_the_call_at_once():
    clip = await _apology()
    async with (
        FakeOpenAIRealtime(key="the-right-key") as fake,
        twilio_rig(_wrong_key_agent(fake)) as rig,
    ):
        call = await rig.sim.inbound_call()
        await call.wait_heard(8000, timeout=10)  # one second of the apology
        loop = asyncio.get_running_loop()
        hung_up = loop.time()
        await call.hangup()
        ended = await rig.next_event("call.ended", timeout=10)
        assert ended.reason == "engine_error"  # why the call failed, not who left first
        assert loop.time() - hung_up < len(clip) / 8000 - 1.5  # it did not play out
        said = _apology_transcripts(rig)
        assert not said, "only part of it was heard"
        cut = [e for e in rig.seen if e.type == "transcript" and e.interrupted]
        assert cut and DEFAULT_APOLOGY_START in cut[0].text


# --- ElevenLabs Conversational AI ---------------------------------------------------------


def _convai_agent(fake, **kw):  # type: ignore[no-untyped-def]
    from patter_core import ElevenLabsConvAI

    def agent(phone):  # type: ignore[no-untyped-def]
        key = kw.pop("key", fake.key)
        engine = ElevenLabsConvAI(
            key, agent_id=fake.agent_id, base_url=fake.base_url, reply_idle_s=0.3
        )
        return phone.agent(engine=engine, **kw)

    return agent


async def _until_seen(rig, predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    from patter_core.bus import Gap

    async with asyncio.timeout(timeout):
        while not any(predicate(e) for e in rig.seen):
            item = await rig.events.get()
            if not isinstance(item, Gap):
                rig.seen.append(item)
    return next(e for e in rig.seen if predicate(e))


async def test_elevenlabs_convai_call_with_tool_round_trip_barge_in_transcript_and_cost():
    import pytest

    from patter_core import tool
    from patter_core.pricing import Pricing
    from tests.fakes.audio import mulaw, voiced
    from tests.fakes.elevenlabs_convai import FakeElevenLabsConvAI
    from tests.fakes.elevenlabs_convai import Reply as XiReply

    looked_up = []

    @tool
    async def lookup_order(order_id: str) -> dict:
        """Find an order.

        Args:
            order_id: the order number
        """
        looked_up.append(order_id)
        return {"status": "shipped"}

    long = ("Your order shipped on Monday and it is on its way to you, " * 4).strip()
    async with FakeElevenLabsConvAI() as fake:
        fake.caller_says = ["Where is order A-1042?", "Thanks, that is all."]
        fake.replies = [
            XiReply(tool="lookup_order", parameters={"order_id": "A-1042"}),
            XiReply(text=long, audio_ms=4000),  # the answer after the tool, cut by the caller
            XiReply(text="You are welcome, goodbye.", audio_ms=500),
        ]
        agent = _convai_agent(fake, first_message="Acme, hello.", tools=[lookup_order])
        async with twilio_rig(agent) as rig:
            call = await rig.sim.inbound_call()
            await call.wait_heard(400 * 8, timeout=10)  # the greeting, µ-law untouched
            call.say(mulaw(voiced(700)))
            await _until_seen(rig, lambda e: e.type == "tool.result")
            await call.wait_heard((400 + 1000) * 8, timeout=10)  # a second of the answer
            clears = call.clears
            call.say(mulaw(voiced(900)))
            await _until_seen(
                rig, lambda e: e.type == "transcript" and e.role == "agent" and "goodbye" in e.text
            )
            barges = [e for e in rig.seen if e.type == "barge_in"]
            assert len(barges) == 1, barges  # the finished greeting was not "interrupted"
            barge = barges[0]
            assert call.clears > clears, "the clear reached the carrier"
            assert 900 <= barge.heard_ms < 4000
            called = next(e for e in rig.seen if e.type == "tool.called")
            result = next(e for e in rig.seen if e.type == "tool.result")
            assert called.name == "lookup_order" and called.arguments == {"order_id": "A-1042"}
            assert result.result == {"status": "shipped"} and looked_up == ["A-1042"]
            conn = fake.conns[0]
            assert conn.tool_results and "shipped" in conn.tool_results[0]["result"]
            assert conn.tool_results[0]["is_error"] is False
            override = conn.initiation["conversation_config_override"]["agent"]
            assert override["first_message"] == "", "the session greets, the agent does not"
            assert '"Acme, hello."' in conn.user_messages[0]
            said = [e for e in rig.seen if e.type == "transcript"]
            caller = [e.text for e in said if e.role == "caller" and e.final]
            assert caller == ["Where is order A-1042?", "Thanks, that is all."]
            agent_said = [(e.text, e.interrupted) for e in said if e.role == "agent"]
            assert agent_said[0] == ("Acme, hello.", False)
            assert agent_said[-1] == ("You are welcome, goodbye.", False)
            cut = [text for text, interrupted in agent_said if interrupted]
            assert len(cut) == 1 and cut[0] and long.startswith(cut[0]) and cut[0] != long
            await call.wait_heard((400 + 1000 + 500) * 8, timeout=10)
            await call.hangup()
            ended = await rig.next_event("call.ended")
            assert ended.reason == "hangup"
            metrics = [e for e in rig.seen if e.type == "turn.metrics"]
            seconds = sum(m.cost.units.get("convai_seconds", 0.0) for m in metrics)
            assert seconds > 0 and all(m.cost.llm == 0 and m.cost.tts == 0 for m in metrics)
            rate = Pricing().convai_per_minute
            assert sum(m.cost.realtime for m in metrics) == pytest.approx(seconds / 60 * rate)
            assert ended.cost is not None
            assert ended.cost.units["convai_seconds"] == pytest.approx(seconds)
            assert ended.cost.realtime == pytest.approx(seconds / 60 * rate)


async def test_elevenlabs_convai_refused_key_ends_the_call_cleanly():
    from tests.fakes.elevenlabs_convai import FakeElevenLabsConvAI

    async with (
        FakeElevenLabsConvAI(key="xi-the-right-key") as fake,
        twilio_rig(_convai_agent(fake, key="xi-a-wrong-key")) as rig,
    ):
        await rig.sim.inbound_call()
        ended = await rig.next_event("call.ended", timeout=15)
        assert ended.reason == "engine_error"
        errors = [e for e in rig.seen if e.type == "error"]
        assert errors and errors[-1].fatal
        assert all("xi-a-wrong-key" not in e.model_dump_json() for e in rig.seen)
        assert fake.signed_requests and not fake.conns  # refused before any socket


async def test_elevenlabs_convai_socket_dropped_mid_call_reconnects_once_with_context():
    from tests.fakes.audio import mulaw, voiced
    from tests.fakes.elevenlabs_convai import FakeElevenLabsConvAI
    from tests.fakes.elevenlabs_convai import Reply as XiReply

    async with FakeElevenLabsConvAI() as fake:
        fake.caller_says = ["Do you deliver?", "To Brooklyn?"]
        fake.replies = [
            XiReply(text="Let me check that", audio_ms=1000, drop_after_chunks=2),
            XiReply(text="Yes, Brooklyn too.", audio_ms=500),
        ]
        async with twilio_rig(_convai_agent(fake, first_message="Acme, hello.")) as rig:
            call = await rig.sim.inbound_call()
            await call.wait_heard(400 * 8, timeout=10)
            call.say(mulaw(voiced(700)))
            async with asyncio.timeout(15):
                await fake.until(
                    lambda f: len(f.conns) == 2 and bool(f.conns[1].contextual_updates)
                )
            second = fake.conns[1]
            assert second.initiation["conversation_config_override"]["agent"]["first_message"] == ""
            context = second.contextual_updates[0]
            assert "Caller: Do you deliver?" in context and "Agent: Acme, hello." in context
            await call.wait_heard((400 + 200) * 8, timeout=10)  # what came before the drop
            call.say(mulaw(voiced(700)))  # answered on the new connection
            await _until_seen(
                rig, lambda e: e.type == "transcript" and e.role == "agent" and "Brooklyn" in e.text
            )
            assert not any(e.type == "call.ended" for e in rig.seen)
            assert not any(e.type == "error" and e.fatal for e in rig.seen)
            await call.hangup()
            ended = await rig.next_event("call.ended")
            assert ended.reason == "hangup"


GREETING = "Welcome to Acme, " * 12


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
            # What the broken reply had queued was cleared; the apology played whole.
            assert bytes(call.heard).endswith(await _apology())
            assert len(_apology_transcripts(rig)) == 1


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
            assert bytes(call.heard).endswith(await _apology())
            assert len(_apology_transcripts(rig)) == 1


async def test_session_vad_reaches_a_brain_that_guards_turns_with_it():
    """The pipeline holds a turn open while the session's VAD hears the caller."""
    from patter_core.engines.echo import EchoEngine
    from tests.fakes.audio import mulaw, voiced

    heard: list[bool] = []

    class Guarded(EchoEngine):
        def create_brain(self) -> "Guarded":
            return Guarded()

        def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
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
