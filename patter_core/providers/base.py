"""Seams for pipeline providers.

A provider object (``DeepgramSTT()``, ``OpenAILLM()``, ``ElevenLabsTTS()``) is
configuration shared by every call; per call the pipeline opens what it needs
(an STT stream, a TTS synthesis per sentence, an LLM completion per turn), so
one agent definition serves many concurrent calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from patter_core.audio.formats import AudioFormat
from patter_core.brain import ToolSpec


class ProviderError(Exception):
    """A provider failed. The message names the provider and never a secret."""

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status
        self.retryable = retryable


# --- speech to text -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transcription:
    """``final``: this text will not change. ``end_of_turn``: the speaker finished."""

    text: str
    final: bool
    end_of_turn: bool = False
    confidence: float | None = None


class STTStream(Protocol):
    async def push_audio(self, payload: bytes) -> None:
        """Caller audio in the provider's ``input_format``."""

    def results(self) -> AsyncIterator[Transcription]: ...

    async def finalize(self) -> None:
        """Ask for a final result for the audio so far (end of turn known elsewhere)."""

    async def close(self) -> None: ...

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio sent, the unit STT is billed in."""
        ...


class STT(Protocol):
    name: str

    @property
    def input_format(self) -> AudioFormat: ...

    async def open(self, call_id: str) -> STTStream: ...


# --- language models ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(slots=True)
class Message:
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCallPart] = field(default_factory=list)
    tool_call_id: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """The model finished asking for tools (fragments already joined)."""

    calls: list[ToolCallPart]


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


LLMChunk = TextDelta | ToolCalls | Usage


class LLM(Protocol):
    name: str
    model: str

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        """One completion, streamed. Cancel by closing the iterator."""
        ...


# --- text to speech -------------------------------------------------------


class TTS(Protocol):
    name: str

    @property
    def output_format(self) -> AudioFormat: ...

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Audio for ``text`` in ``output_format``, streamed; closing the iterator
        stops synthesis at once (barge-in)."""
        ...

    async def close(self) -> None: ...


def tool_schema(spec: ToolSpec) -> dict[str, Any]:
    """OpenAI-style function description, the lingua franca most LLM APIs accept."""
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
        },
    }
