"""What the console knows about each call, built only from daemon events.

Pure data: screens render it, the app feeds it. Kept separate so the rules
(what counts as a turn, which latency is shown) are testable without a terminal.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from patter_core.events import (
    AmdResult,
    BargeIn,
    BaseEvent,
    CallAnswered,
    CallEnded,
    CallStarted,
    Dtmf,
    ErrorEvent,
    GuardrailTriggered,
    LatencyParts,
    RecordingReady,
    ToolCalled,
    ToolResult,
    Transcript,
    TurnMetrics,
)
from patter_tui import format as fmt

LineKind = Literal[
    "caller", "agent", "tool", "result", "dtmf", "amd", "turn", "barge", "note", "error"
]
MAX_CALLS = 200
MAX_LINES = 2000


@dataclass(frozen=True)
class Line:
    kind: LineKind
    text: str
    cut: bool = False


@dataclass
class CallState:
    call_id: str
    direction: str = ""
    number: str = ""
    agent: str = ""
    state: str = "ringing"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    total_cost: float | None = None
    latencies: list[float] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)

    @property
    def last_latency(self) -> float | None:
        return self.latencies[-1] if self.latencies else None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def apply(self, event: BaseEvent) -> list[Line]:
        """Fold one event in; returns the transcript lines it adds (often none)."""
        new = _lines_for(self, event)
        self.lines.extend(new)
        del self.lines[:-MAX_LINES]
        return new


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def turn_latency(parts: LatencyParts) -> float | None:
    """The latency a caller feels: end of their speech to the agent's first audio."""
    return parts.end_of_speech_to_first_heard_ms or parts.end_of_speech_to_first_audio_ms


def _lines_for(call: CallState, event: BaseEvent) -> list[Line]:
    match event:
        case CallStarted():
            call.direction = event.direction
            call.number = fmt.other_party(event.direction, event.caller, event.callee)
            call.agent = event.agent
            call.started_at = event.ts
            return [Line("note", f"{event.direction} call {call.number} · agent {event.agent}")]
        case CallAnswered():
            call.state = "in-progress"
            return [Line("note", "answered")]
        case Transcript() if event.final:
            return [Line(event.role, event.text, cut=event.interrupted)]
        case ToolCalled():
            return [Line("tool", f"{event.name}({_short(event.arguments)})")]
        case ToolResult():
            shown = f"error: {event.error}" if event.error else _short(event.result)
            return [Line("result", f"{event.name} → {shown}")]
        case Dtmf():
            return [Line("dtmf", event.digit)]
        case AmdResult():
            return [Line("amd", "machine" if event.machine else event.result)]
        case BargeIn():
            return [Line("barge", f"caller barged in after {event.heard_ms:.0f} ms of speech")]
        case TurnMetrics():
            ms = turn_latency(event.latency)
            if ms is not None:
                call.latencies.append(ms)
            call.total_cost = event.total_cost
            text = f"turn {event.turn} · {fmt.latency(ms)} · {fmt.cost(event.cost.total)}"
            return [Line("turn", text)]
        case GuardrailTriggered():
            return [Line("note", f"guardrail {event.name} replaced agent text")]
        case RecordingReady():
            return [Line("note", "recording ready")]
        case ErrorEvent():
            return [Line("error", f"{event.code}: {event.message}")]
        case CallEnded():
            call.state = event.status
            call.ended_at = event.ts
            call.duration_s = event.duration_s
            if event.cost is not None:
                call.total_cost = event.cost.total
            return [Line("note", f"ended: {event.reason} · {fmt.duration(event.duration_s)}")]
    return []


class CallRegistry:
    """Recent calls by id, oldest dropped first once MAX_CALLS is reached."""

    def __init__(self) -> None:
        self._calls: OrderedDict[str, CallState] = OrderedDict()

    def get(self, call_id: str) -> CallState:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = CallState(call_id)
            while len(self._calls) > MAX_CALLS:
                self._calls.popitem(last=False)
        return call

    def find(self, call_id: str) -> CallState | None:
        return self._calls.get(call_id)

    def apply(self, event: BaseEvent) -> list[Line]:
        return self.get(event.call_id).apply(event)

    def clear(self) -> None:
        self._calls.clear()
