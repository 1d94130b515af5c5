"""Wiring for session tests: a MemoryLeg, a ScriptedBrain, a bus and recording controls."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from patter_core.bus import EventBus, Subscription
from patter_core.events import BaseEvent
from patter_core.session.config import AgentConfig, CallInfo
from patter_core.session.session import CallSession
from tests.fakes.memory_leg import MemoryLeg
from tests.fakes.scripted_brain import ScriptedBrain


@dataclass
class RecordingControls:
    leg: MemoryLeg
    transfers: list[str] = field(default_factory=list)
    hangups: int = 0
    dtmf: list[str] = field(default_factory=list)
    fail_transfer: bool = False

    async def transfer(self, number: str) -> None:
        if self.fail_transfer:
            raise RuntimeError("carrier refused the transfer")
        self.transfers.append(number)

    async def hangup(self) -> None:
        self.hangups += 1
        self.leg.stop("hangup")  # the carrier ends the stream, as Twilio does

    async def send_dtmf(self, digits: str) -> None:
        self.dtmf.append(digits)


@dataclass
class Call:
    leg: MemoryLeg
    brain: ScriptedBrain
    bus: EventBus
    session: CallSession
    controls: RecordingControls
    sub: Subscription
    task: asyncio.Task[dict[str, Any]]
    seen: list[BaseEvent] = field(default_factory=list)

    def events(self, type_: str) -> list[Any]:
        while (ev := self.sub.get_nowait()) is not None:
            if isinstance(ev, BaseEvent):
                self.seen.append(ev)
        return [e for e in self.seen if getattr(e, "type", None) == type_]

    async def settle(self) -> None:
        await self.brain.settle()
        await self.leg.settle()

    async def end(self) -> dict[str, Any]:
        if not self.task.done():
            self.leg.stop("hangup")
        return await asyncio.wait_for(self.task, 10)


async def start_call(
    agent: AgentConfig | None = None,
    info: CallInfo | None = None,
    brain: ScriptedBrain | None = None,
    **session_kw: Any,
) -> Call:
    leg = MemoryLeg()
    brain = brain or ScriptedBrain()
    bus = EventBus()
    sub = bus.subscribe(maxsize=10_000)
    controls = RecordingControls(leg)
    session = CallSession(
        leg,
        brain,
        bus,
        agent or AgentConfig(),
        info or CallInfo("call-1", caller="+15550001111", callee="+15550002222"),
        controls,
        clock=leg.clock,
        **session_kw,
    )
    task = asyncio.create_task(session.run())
    await leg.start()
    await brain.settle()
    return Call(leg, brain, bus, session, controls, sub, task)
