"""Which reply handler answers a pipeline call, and agents that have none.

Over the simulated Twilio (real HTTP, signatures and WebSockets), with the
scripted STT and fake TTS from ``tests/fakes/speech.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from patter_core import EchoEngine, Patter, Twilio
from patter_core.providers.http import close_shared_session
from patter_core.providers.llm import OpenAILLM
from patter_core.testing import SimulatedTwilio
from tests.fakes.llm_servers import FakeLLM, Reply
from tests.fakes.speech import FakeTTS, ScriptedSTT
from tests.twilio_harness import twilio_rig

SECOND = "+15550002222"


async def reply_a(text: str) -> str:
    return f"front desk heard {text}"


async def reply_b(text: str) -> str:
    return f"sales heard {text}"


async def _agent_line(rig, stt: ScriptedSTT, to: str) -> str:
    """Call ``to``, say one turn, return the agent's reply text."""
    call = await rig.sim.inbound_call(to=to)
    await rig.next_event("call.answered")
    stt.stream.turn("hello there")
    async with asyncio.timeout(10):
        while True:
            event = await rig.events.get()
            if event.type == "transcript" and event.role == "agent":
                await call.hangup()
                return str(event.text)


async def test_each_routed_agent_answers_with_its_own_handler():
    stt_a, stt_b = ScriptedSTT(), ScriptedSTT()

    def agents(phone: Patter):
        phone.routes[SECOND] = phone.agent(
            stt=stt_b, tts=FakeTTS(), on_message=reply_b, name="sales"
        )
        return phone.agent(stt=stt_a, tts=FakeTTS(), name="front desk")

    async with twilio_rig(agents, serve_kwargs={"on_message": reply_a}) as rig:
        assert await _agent_line(rig, stt_b, SECOND) == "sales heard hello there"
        assert await _agent_line(rig, stt_a, "+15550001234") == "front desk heard hello there"


async def test_a_routed_agent_with_an_llm_is_not_handed_serves_handler():
    """serve()'s on_message is for agents without an LLM; a routed agent with
    one used to be handed it too, and every call to its number failed."""
    stt_a, stt_b = ScriptedSTT(), ScriptedSTT()
    async with FakeLLM("openai") as llm:
        llm.replies.append(Reply(tokens=["the ", "model ", "answers"]))

        def agents(phone: Patter):
            phone.routes[SECOND] = phone.agent(
                stt=stt_b,
                llm=OpenAILLM(api_key=llm.key, base_url=llm.base_url),
                tts=FakeTTS(),
                name="model",
            )
            return phone.agent(stt=stt_a, tts=FakeTTS(), name="front desk")

        async with twilio_rig(agents, serve_kwargs={"on_message": reply_a}) as rig:
            assert await _agent_line(rig, stt_b, SECOND) == "the model answers"
        await close_shared_session()


def test_an_agent_cannot_have_both_an_llm_and_a_handler():
    phone = Patter(carrier=Twilio("AC" + "0" * 32, "t"), phone_number="+15550001234")
    with pytest.raises(ValueError, match="on_message= replaces llm="):
        phone.agent(stt=ScriptedSTT(), llm=object(), tts=FakeTTS(), on_message=reply_a)
    with pytest.raises(ValueError, match="on_message= replaces llm="):
        phone.agent(engine=EchoEngine(), on_message=reply_a)


def _phone(sim: SimulatedTwilio) -> Patter:
    return Patter(
        carrier=Twilio(sim.account_sid, sim.auth_token, api_base_url=sim.api_url),
        phone_number="+15550001234",
        webhook_url=sim.public_host,
        persist=False,
    )


async def test_serve_refuses_a_pipeline_agent_with_nothing_to_reply_with():
    """stt= and tts= with neither llm= nor on_message: every call used to open,
    go silent and stay 'live' forever; now serve() says so before any call."""
    async with SimulatedTwilio() as sim:
        phone = _phone(sim)
        agent = phone.agent(stt=ScriptedSTT(), tts=FakeTTS(), name="mute")
        with pytest.raises(ValueError, match="'mute' has stt= and tts= but nothing to reply"):
            await asyncio.wait_for(phone.serve(agent, port=0), 10)
        with pytest.raises(ValueError):
            await phone.ready
        await phone.disconnect()


async def test_a_routed_agent_with_nothing_to_reply_with_is_refused_too():
    async with SimulatedTwilio() as sim:
        phone = _phone(sim)
        phone.routes[SECOND] = phone.agent(stt=ScriptedSTT(), tts=FakeTTS(), name="mute")
        with pytest.raises(ValueError, match="'mute'"):
            await asyncio.wait_for(phone.serve(phone.agent(engine=EchoEngine()), port=0), 10)
        await phone.disconnect()


async def test_call_refuses_an_agent_with_nothing_to_reply_with_before_dialling():
    async with twilio_rig() as rig:
        mute = rig.phone.agent(stt=ScriptedSTT(), tts=FakeTTS(), name="mute")
        with pytest.raises(ValueError, match="nothing to reply with"):
            await rig.phone.call(to="+15550004444", agent=mute)
        assert rig.sim.requests_of("create_call") == []
