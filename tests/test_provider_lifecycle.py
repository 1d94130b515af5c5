"""Provider sockets an agent keeps between calls are closed when nothing needs them.

A Cartesia TTS keeps one WebSocket (and a reader task) for all its calls; it
used to outlive Patter.disconnect() and every patterd reload. Over the
simulated Twilio and the fake Cartesia server (real WebSockets).
"""

from __future__ import annotations

import asyncio

from patter_core.providers.tts import CartesiaTTS
from tests.fakes.cartesia_tts import cartesia_server
from tests.fakes.speech import ScriptedSTT
from tests.twilio_harness import twilio_rig

SECOND = "+15550002222"


async def reply(text: str) -> str:
    return f"heard {text}"


def _readers() -> list[asyncio.Task]:
    return [
        t for t in asyncio.all_tasks() if t.get_name() == "cartesia-tts-reader" and not t.done()
    ]


async def _until(predicate, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_disconnect_closes_the_tts_socket_the_calls_shared():
    async with cartesia_server() as fake:

        def agent(phone):
            tts = CartesiaTTS("test-key", base_url=fake.ws_url)
            return phone.agent(stt=ScriptedSTT(), tts=tts, first_message="Hello there.")

        async with twilio_rig(agent, serve_kwargs={"on_message": reply}) as rig:
            call = await rig.sim.inbound_call()
            await _until(lambda: fake.seen.connections == 1)
            await call.hangup()
            await rig.next_event("call.ended")
            assert not fake.seen.disconnected, "kept open for the next call"
            assert _readers()
        await _until(lambda: fake.seen.disconnected)
        assert _readers() == []


async def test_a_retired_agents_socket_closes_after_its_last_call():
    async with cartesia_server() as fake:
        old = None

        def agent(phone):
            nonlocal old
            tts = CartesiaTTS("test-key", base_url=fake.ws_url)
            old = phone.agent(stt=ScriptedSTT(), tts=tts, first_message="Hello there.")
            phone.routes[SECOND] = old
            return phone.agent(stt=ScriptedSTT(), tts=CartesiaTTS("test-key", base_url=fake.ws_url))

        async with twilio_rig(agent, serve_kwargs={"on_message": reply}) as rig:
            call = await rig.sim.inbound_call(to=SECOND)
            await _until(lambda: fake.seen.connections == 1)
            assert old is not None
            rig.phone.routes[SECOND] = rig.phone._agent  # a reload replaced the agent
            rig.phone.retire([old])
            await asyncio.sleep(0.3)
            assert not fake.seen.disconnected, "its call is still up"
            await call.hangup()
            await _until(lambda: fake.seen.disconnected)
            assert _readers() == []
