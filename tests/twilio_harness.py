"""A Patter server wired to a SimulatedTwilio, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from patter_core import Patter, Twilio
from patter_core.agent import Agent
from patter_core.bus import Gap, Subscription
from patter_core.events import BaseEvent
from tests.fakes.twilio import SimulatedTwilio


@dataclass
class Rig:
    sim: SimulatedTwilio
    phone: Patter
    events: Subscription
    seen: list[BaseEvent] = field(default_factory=list)

    async def next_event(self, type_: str, timeout: float = 10.0) -> BaseEvent:
        """The next event of ``type_``; every event read on the way is kept in ``seen``."""
        async with asyncio.timeout(timeout):
            while True:
                item = await self.events.get()
                if isinstance(item, Gap):
                    continue
                self.seen.append(item)
                if getattr(item, "type", "") == type_:
                    return item

    def drain(self) -> list[BaseEvent]:
        out = []
        while (item := self.events.get_nowait()) is not None:
            if not isinstance(item, Gap):
                out.append(item)
        return out


@contextlib.asynccontextmanager
async def twilio_rig(
    agent_factory: Any = None,
    *,
    serve_kwargs: dict[str, Any] | None = None,
    persist: Any = False,
    **sim_kwargs: Any,
) -> AsyncIterator[Rig]:
    async with SimulatedTwilio(**sim_kwargs) as sim:
        phone = Patter(
            carrier=Twilio(
                account_sid=sim.account_sid, auth_token=sim.auth_token, api_base_url=sim.api_url
            ),
            phone_number="+15550001234",
            webhook_url=sim.public_host,
            persist=persist,
        )
        agent: Agent = agent_factory(phone) if agent_factory else phone.agent(engine=_echo())
        events = phone.bus.subscribe(maxsize=100_000, name="test")
        task = asyncio.create_task(phone.serve(agent, port=0, **(serve_kwargs or {})))
        try:
            await asyncio.wait_for(asyncio.shield(phone.ready), 10)
            assert phone.server is not None
            sim.server_url = f"http://127.0.0.1:{phone.server.port}"
            yield Rig(sim, phone, events)
        finally:
            await sim.settle()
            await phone.disconnect()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)


def _echo() -> Any:
    from patter_core import EchoEngine

    return EchoEngine()
