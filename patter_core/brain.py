"""The ``Brain`` seam: what a call session talks to.

An engine (one provider does speech to speech) and the pipeline
(STT → LLM → TTS) both implement it. The session pushes caller audio and
events in and reads typed outputs; it never knows which provider it has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from patter_core.audio.formats import PCM16_16K, AudioFormat


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class BrainContext:
    call_id: str
    caller: str
    callee: str
    direction: str
    system_prompt: str = ""
    first_message: str = ""
    voice: str = ""
    tools: list[ToolSpec] = field(default_factory=list)
    carrier_format: AudioFormat | None = None


@dataclass(slots=True)
class AgentAudio:
    """Agent speech in ``Brain.output_format``; ``response_id`` groups one reply.

    Not frozen, as ``LegAudio`` is not: one per audio chunk. Treat it as read-only.
    """

    payload: bytes
    response_id: str = ""


@dataclass(frozen=True, slots=True)
class AgentText:
    """Agent words as they are produced (``final`` closes the reply's text)."""

    text: str
    final: bool
    response_id: str = ""


@dataclass(frozen=True, slots=True)
class CallerText:
    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class CallerSpeech:
    """The brain's own speech detector (provider VAD) saw the caller start or stop."""

    speaking: bool
    # The provider itself cut the reply being played (server-side barge-in); the
    # session then stops playback without calling interrupt().
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class ToolRequest:
    tool_call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """One reply finished; ``usage`` holds cost units (tokens, characters, seconds)."""

    response_id: str = ""
    usage: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BrainFailure:
    code: str
    message: str
    fatal: bool = True


BrainOutput = (
    AgentAudio | AgentText | CallerText | CallerSpeech | ToolRequest | ResponseDone | BrainFailure
)


@runtime_checkable
class Brain(Protocol):
    @property
    def input_format(self) -> AudioFormat: ...

    @property
    def output_format(self) -> AudioFormat: ...

    async def start(self, ctx: BrainContext) -> None:
        """Connect and configure; called once per call, may run before media arrives."""

    async def push_audio(self, payload: bytes) -> None:
        """Caller audio in ``input_format``."""

    async def push_dtmf(self, digit: str) -> None: ...

    def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        """The session's VAD heard the caller start (``True``) or stop talking.

        ``ago_s``: how long ago the voice actually stopped (the VAD decides
        after a hangover), for the end-of-speech latency.

        A brain that ends turns itself from text (the pipeline) holds the turn
        open while the caller speaks; one with its own speech detector ignores it.
        """

    def outputs(self) -> AsyncIterator[BrainOutput]: ...

    async def say(self, text: str) -> None:
        """Speak ``text`` verbatim (first message, voicemail, apology)."""

    async def interrupt(self, heard_ms: float) -> None:
        """Barge-in: stop the reply; keep only the first ``heard_ms`` of it in memory."""

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None: ...

    async def close(self) -> None: ...


class UnbuiltBrain:
    """Stands in for a brain that could not even be built for this call.

    The call still runs through its session, so the caller hears the apology
    and the history says why (an ``engine_start`` error, then ``call.ended``
    with ``engine_error``), instead of a media socket closed on a silent line.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_16K

    async def start(self, ctx: BrainContext) -> None:
        raise RuntimeError(self.reason)

    async def push_audio(self, payload: bytes) -> None:
        return None

    async def push_dtmf(self, digit: str) -> None:
        return None

    def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        return None

    async def outputs(self) -> AsyncIterator[BrainOutput]:
        return
        yield

    async def say(self, text: str) -> None:
        return None

    async def interrupt(self, heard_ms: float) -> None:
        return None

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None:
        return None

    async def close(self) -> None:
        return None
