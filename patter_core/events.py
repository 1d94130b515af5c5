"""Typed events: the only way state leaves a call.

Every event names its call, carries a per-call monotonic ``seq`` (stamped by
the :class:`~patter_core.bus.EventBus` when published) and a UTC timestamp.
The ``type`` field is the discriminator, so ``parse_event`` turns any JSON
line from ``events.jsonl`` or the control API back into the right model.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

# A lone UTF-16 surrogate (``"\ud83d"`` in a vendor's or a model's JSON, half
# of an emoji) is a legal Python str but cannot be encoded as UTF-8, so the
# event carrying it could be neither logged, indexed nor sent to a client.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _now() -> datetime:
    return datetime.now(UTC)


def scrub_text(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings replaced by U+FFFD.

    Returns the same object when there is nothing to replace, which is almost
    always: most text is ASCII and is passed over without a search.
    """
    kind = type(value)
    if kind is str:
        if value.isascii() or _SURROGATE.search(value) is None:
            return value
        return _SURROGATE.sub("\ufffd", value)
    if kind is dict:
        cleaned = {scrub_text(k): scrub_text(v) for k, v in value.items()}
        same = all(a is b for a, b in zip(cleaned.items(), value.items(), strict=True))
        return value if same else cleaned
    if kind is list or kind is tuple:
        items = [scrub_text(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return kind(items)
    if isinstance(value, BaseModel):
        fields = value.__dict__
        for name, field in fields.items():
            kind = type(field)
            if kind in _PLAIN or (kind is str and field.isascii()):
                continue
            cleaned_field = scrub_text(field)
            if cleaned_field is not field:
                fields[name] = cleaned_field
    return value


# Field types that can hold no text, skipped without a call.
_PLAIN = frozenset({int, float, bool, type(None), datetime})


class BaseEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    call_id: str
    seq: int = 0
    ts: datetime = Field(default_factory=_now)

    @model_validator(mode="after")
    def _encodable(self) -> BaseEvent:
        """Every event can be written as UTF-8, whatever text reached it."""
        scrub_text(self)
        return self


class CallStarted(BaseEvent):
    type: Literal["call.started"] = "call.started"
    direction: Literal["inbound", "outbound"]
    caller: str = ""
    callee: str = ""
    carrier: str = ""
    agent: str = ""
    carrier_call_id: str = ""


class CallAnswered(BaseEvent):
    type: Literal["call.answered"] = "call.answered"


class CallEnded(BaseEvent):
    type: Literal["call.ended"] = "call.ended"
    reason: str = "completed"
    duration_s: float = 0.0
    status: str = "completed"
    turns: int = 0
    cost: CostParts | None = None


class Transcript(BaseEvent):
    type: Literal["transcript"] = "transcript"
    role: Literal["caller", "agent"]
    text: str
    final: bool = True
    interrupted: bool = False
    turn: int = 0


class LatencyParts(BaseModel):
    """Milliseconds; ``None`` where the part does not apply to this brain."""

    end_of_speech_to_first_audio_ms: float | None = None
    end_of_speech_to_first_heard_ms: float | None = None
    stt_final_ms: float | None = None
    llm_first_token_ms: float | None = None
    tts_first_byte_ms: float | None = None
    barge_in_to_clear_ms: float | None = None


class CostParts(BaseModel):
    """US dollars per part, plus the units they were computed from."""

    carrier: float = 0.0
    stt: float = 0.0
    llm: float = 0.0
    tts: float = 0.0
    realtime: float = 0.0
    units: dict[str, float] = Field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.carrier + self.stt + self.llm + self.tts + self.realtime


CallEnded.model_rebuild()


class TurnMetrics(BaseEvent):
    type: Literal["turn.metrics"] = "turn.metrics"
    turn: int
    latency: LatencyParts = Field(default_factory=LatencyParts)
    cost: CostParts = Field(default_factory=CostParts)
    total_cost: float = 0.0


class ToolCalled(BaseEvent):
    type: Literal["tool.called"] = "tool.called"
    tool_call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResult(BaseEvent):
    type: Literal["tool.result"] = "tool.result"
    tool_call_id: str
    name: str
    result: Any = None
    error: str | None = None
    duration_ms: float = 0.0


class Dtmf(BaseEvent):
    type: Literal["dtmf"] = "dtmf"
    digit: str


class AmdResult(BaseEvent):
    type: Literal["amd.result"] = "amd.result"
    result: str
    machine: bool = False
    detection_ms: float | None = None


class BargeIn(BaseEvent):
    type: Literal["barge_in"] = "barge_in"
    heard_ms: float = 0.0
    detect_to_clear_ms: float = 0.0
    resumed: bool = False


class GuardrailTriggered(BaseEvent):
    type: Literal["guardrail.triggered"] = "guardrail.triggered"
    name: str
    original: str = ""
    replacement: str = ""


class RecordingReady(BaseEvent):
    type: Literal["recording.ready"] = "recording.ready"
    url: str = ""
    recording_id: str = ""
    duration_s: float | None = None


class ErrorEvent(BaseEvent):
    type: Literal["error"] = "error"
    code: str
    message: str
    fatal: bool = False


Event = Annotated[
    CallStarted
    | CallAnswered
    | CallEnded
    | Transcript
    | TurnMetrics
    | ToolCalled
    | ToolResult
    | Dtmf
    | AmdResult
    | BargeIn
    | GuardrailTriggered
    | RecordingReady
    | ErrorEvent,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Rebuild an event from JSON text or a dict; raises ``pydantic.ValidationError``."""
    if isinstance(data, dict):
        return EVENT_ADAPTER.validate_python(data)
    return EVENT_ADAPTER.validate_json(data)


def dump_event(event: BaseEvent) -> str:
    return event.model_dump_json()
