"""A Runtime for tests: real events on a real EventBus, calls kept in memory.

It stands in for the SDK-backed runtime so the daemon, API and patterctl can be
exercised end to end; ``patterd --runtime tests.support.runtime:create`` uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from patter_core.bus import EventBus
from patter_core.events import (
    AmdResult,
    BargeIn,
    BaseEvent,
    CallAnswered,
    CallEnded,
    CallStarted,
    CostParts,
    Dtmf,
    LatencyParts,
    ToolCalled,
    ToolResult,
    Transcript,
    TurnMetrics,
)
from patterd.config import DaemonConfig
from patterd.credentials import Credentials
from patterd.runtime import CallNotFound, LiveCall, NotAccepting, RuntimeFailure, UnknownAgent

REFUSED_NUMBER = "+15550000000"
SCRIPTED_NUMBER = "+15550001111"
"""Calls to this number play SCRIPT after the opening, one step every SCRIPT_STEP_S."""
SCRIPT_STEP_S = 0.25
FINAL_LINE = "Done, eight o'clock it is."


class FutureEvent(BaseEvent):
    """An event type no client knows yet: clients must skip it."""

    type: Literal["future.event"] = "future.event"
    detail: str = ""


def _script(call_id: str) -> list[BaseEvent]:
    """A short conversation with every kind of event a console shows."""
    return [
        AmdResult(call_id=call_id, result="human", detection_ms=900.0),
        Transcript(call_id=call_id, role="caller", text="I'd like a table for Friday.", turn=2),
        ToolCalled(call_id=call_id, tool_call_id="t1", name="book_table", arguments={"day": "fri"}),
        ToolResult(call_id=call_id, tool_call_id="t1", name="book_table", result={"ok": True}),
        Transcript(
            call_id=call_id, role="agent", text="Booked for seven, and", interrupted=True, turn=2
        ),
        FutureEvent(call_id=call_id, detail="from a newer daemon"),
        TurnMetrics(
            call_id=call_id,
            turn=2,
            latency=LatencyParts(end_of_speech_to_first_audio_ms=610.0),
            cost=CostParts(llm=0.004),
            total_cost=0.016,
        ),
        Dtmf(call_id=call_id, digit="5"),
        Transcript(call_id=call_id, role="caller", text="Make it eight.", turn=3),
        Transcript(call_id=call_id, role="agent", text=FINAL_LINE, turn=3),
        TurnMetrics(
            call_id=call_id,
            turn=3,
            latency=LatencyParts(end_of_speech_to_first_audio_ms=380.0),
            cost=CostParts(llm=0.003),
            total_cost=0.019,
        ),
    ]


class MemoryStore:
    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.rebuilds = 0

    def list_calls(
        self,
        limit: int = 50,
        offset: int = 0,
        *,
        direction: str | None = None,
        status: str | None = None,
        number: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[dict[str, Any]]:
        rows = sorted(self.calls.values(), key=lambda r: r["started_at"], reverse=True)
        if direction:
            rows = [r for r in rows if r["direction"] == direction]
        if status:
            rows = [r for r in rows if r["status"] == status]
        if number:
            rows = [r for r in rows if number in (r["caller"], r["callee"])]
        if since:
            rows = [r for r in rows if datetime.fromisoformat(r["started_at"]) >= since]
        if until:
            rows = [r for r in rows if datetime.fromisoformat(r["started_at"]) < until]
        return rows[offset : offset + limit]

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        return self.calls.get(call_id)

    def totals_by_day(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Sequence[dict[str, Any]]:
        days: dict[str, dict[str, Any]] = {}
        for row in self.calls.values():
            day = row["started_at"][:10]
            d = days.setdefault(day, {"day": day, "calls": 0, "minutes": 0.0, "cost": 0.0})
            d["calls"] += 1
            d["minutes"] += row.get("duration_s", 0.0) / 60
            d["cost"] += row["cost_total"]
        return sorted(days.values(), key=lambda d: d["day"])

    def rebuild(self) -> int:
        self.rebuilds += 1
        return len(self.calls)


class ScriptedRuntime:
    def __init__(self, config: DaemonConfig, bus: EventBus, credentials: Credentials) -> None:
        self.config = config
        self.bus = bus
        self.credentials = credentials
        self.store = MemoryStore()
        self.live: dict[str, LiveCall] = {}
        self.accepting = True
        self.started = False
        self.closed = False
        self.reloads = 0
        self.transfers: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self._scripts: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        self.started = True

    def live_calls(self) -> list[LiveCall]:
        return list(self.live.values())

    async def place_call(self, to: str, agent: str | None, first_message: str | None) -> str:
        if not self.accepting:
            raise NotAccepting("draining")
        if to == REFUSED_NUMBER:
            raise RuntimeFailure("carrier refused the number")
        name = agent or self.config.default_agent or next(iter(self.config.agents), "")
        if agent is not None and agent not in self.config.agents:
            raise UnknownAgent(f"unknown agent {agent!r}")
        call_id = f"call-{next(self._ids)}"
        now = datetime.now(UTC)
        self.live[call_id] = LiveCall(
            call_id=call_id,
            direction="outbound",
            callee=to,
            caller="+15557654321",
            agent=name,
            state="in-progress",
            started_at=now,
        )
        self.store.calls[call_id] = {
            "call_id": call_id,
            "direction": "outbound",
            "caller": "+15557654321",
            "callee": to,
            "agent": name,
            "status": "live",
            "started_at": now.isoformat(),
            "cost_total": 0.0,
            "transcript": [],
        }
        self.bus.publish(CallStarted(call_id=call_id, direction="outbound", callee=to, agent=name))
        self.bus.publish(CallAnswered(call_id=call_id))
        text = first_message or "Hello from the test runtime."
        self._say(call_id, "agent", text, 1)
        self.bus.publish(
            TurnMetrics(
                call_id=call_id,
                turn=1,
                latency=LatencyParts(end_of_speech_to_first_audio_ms=420.0),
                cost=CostParts(carrier=0.01, llm=0.002),
                total_cost=0.012,
            )
        )
        self.store.calls[call_id]["cost_total"] = 0.012
        self.bus.publish(BargeIn(call_id=call_id, heard_ms=800.0, detect_to_clear_ms=60.0))
        if to == SCRIPTED_NUMBER:
            self._scripts[call_id] = asyncio.create_task(self._play(call_id))
        return call_id

    async def _play(self, call_id: str) -> None:
        for event in _script(call_id):
            await asyncio.sleep(SCRIPT_STEP_S)
            if call_id not in self.live:
                return
            self.bus.publish(event)
            if isinstance(event, Transcript):
                self.store.calls[call_id]["transcript"].append(
                    {"role": event.role, "text": event.text}
                )
            if isinstance(event, TurnMetrics):
                self.store.calls[call_id]["cost_total"] = event.total_cost

    def _say(self, call_id: str, role: Literal["caller", "agent"], text: str, turn: int) -> None:
        self.bus.publish(Transcript(call_id=call_id, role=role, text=text, turn=turn))
        self.store.calls[call_id]["transcript"].append({"role": role, "text": text})

    def _get(self, call_id: str) -> LiveCall:
        try:
            return self.live[call_id]
        except KeyError:
            raise CallNotFound(f"no live call {call_id!r}") from None

    async def hangup(self, call_id: str, *, reason: str = "hangup") -> None:
        self._end(call_id, reason, "completed" if reason == "hangup" else reason)

    def _end(self, call_id: str, reason: str, status: str) -> None:
        live = self._get(call_id)
        del self.live[call_id]
        duration = (datetime.now(UTC) - live.started_at).total_seconds()
        script = self._scripts.pop(call_id, None)
        if script is not None:
            script.cancel()
        row = self.store.calls[call_id]
        row.update(status=status, duration_s=round(duration, 3))
        self.bus.publish(
            CallEnded(call_id=call_id, reason=reason, status=status, duration_s=duration)
        )

    async def transfer(self, call_id: str, to: str) -> None:
        self._get(call_id)
        self.transfers.append((call_id, to))
        self._end(call_id, "transferred", "transferred")

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        self._get(call_id)
        for digit in digits:
            self.bus.publish(Dtmf(call_id=call_id, digit=digit))

    def say(self, call_id: str, text: str) -> None:
        """Caller speech, for tests that need more events on a live call."""
        self._get(call_id)
        self._say(call_id, "caller", text, 2)

    def stop_accepting(self) -> None:
        self.accepting = False

    async def reload_config(self, config: DaemonConfig) -> None:
        self.config = config
        self.reloads += 1

    async def aclose(self) -> None:
        scripts = list(self._scripts.values())
        for call_id in list(self.live):
            self._end(call_id, "shutdown", "interrupted")
        for task in scripts:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.closed = True


def create(config: DaemonConfig, bus: EventBus, credentials: Credentials) -> ScriptedRuntime:
    return ScriptedRuntime(config, bus, credentials)
