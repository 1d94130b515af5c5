"""What a session needs to know about its agent, its call, and how to act on the carrier."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from patter_core.guardrails import Guardrail
from patter_core.pricing import Pricing
from patter_core.session.interruption import InterruptionPolicy
from patter_core.tools import Tool

VadKind = Literal["webrtc", "silero"]

# Spoken (by eSpeak NG, offline) when the brain fails and the call has to end.
DEFAULT_APOLOGY = "Sorry, we are having technical trouble. Please call again later."


class CallControls(Protocol):
    """Carrier actions for one call; the server implements them with ``CarrierControl``."""

    async def transfer(self, number: str) -> None: ...

    async def hangup(self) -> None: ...

    async def send_dtmf(self, digits: str) -> None: ...


@dataclass(slots=True)
class AgentConfig:
    system_prompt: str = ""
    first_message: str = ""
    voice: str = ""
    tools: list[Tool] = field(default_factory=list)
    guardrails: list[Guardrail] = field(default_factory=list)
    policy: InterruptionPolicy = field(default_factory=InterruptionPolicy)
    voicemail_message: str = ""
    greet_before_amd: bool = True
    pricing: Pricing = field(default_factory=Pricing)
    mark_every_ms: int = 100
    vad: VadKind = "webrtc"
    vad_aggressiveness: int = 2
    end_call_timeout_s: float = 10.0
    goodbye_wait_s: float = 3.0
    beep_timeout_s: float = 30.0
    name: str = ""
    apology: str = DEFAULT_APOLOGY


@dataclass(frozen=True, slots=True)
class CallInfo:
    call_id: str
    direction: Literal["inbound", "outbound"] = "inbound"
    caller: str = ""
    callee: str = ""
    carrier: str = ""
    amd_pending: bool = False  # outbound with machine detection: a verdict will come


@dataclass(frozen=True, slots=True)
class MachineDetectionResult:
    """The carrier's answering-machine verdict, given once to ``on_machine_detection``.

    Read as attributes (``result.machine``) or, as earlier versions passed a
    dict, by key (``result["machine"]``).
    """

    call_id: str
    result: str  # the carrier's word: Twilio's AnsweredBy, Telnyx's result
    machine: bool
    detection_ms: float | None

    def __getitem__(self, key: str) -> object:
        if key not in self.__slots__:
            raise KeyError(key)
        return getattr(self, key)


MachineDetectionCallback = Callable[[MachineDetectionResult], Awaitable[None] | None]
