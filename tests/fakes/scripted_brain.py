"""A Brain that emits what the test scripts and records what the session did to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from patter_core.audio.formats import MULAW_8K, AudioFormat
from patter_core.brain import (
    AgentAudio,
    AgentText,
    BrainContext,
    BrainOutput,
    ResponseDone,
)
from tests.fakes.memory_leg import settle

AGENT_SAMPLE = b"\x2a"  # a non-silent µ-law code, so agent audio is easy to recognise


def reply(
    response_id: str,
    text: str,
    ms: int,
    *,
    chunk_ms: int = 200,
    fmt: AudioFormat = MULAW_8K,
    usage: dict[str, float] | None = None,
    done: bool = True,
) -> list[BrainOutput]:
    """One spoken reply as an engine streams it: text, audio chunks, then done."""
    outs: list[BrainOutput] = [AgentText(text, final=True, response_id=response_id)]
    per = fmt.bytes_for_ms(chunk_ms)
    total = fmt.bytes_for_ms(ms)
    for i in range(0, total, per):
        outs.append(AgentAudio(AGENT_SAMPLE * min(per, total - i), response_id))
    if done:
        outs.append(ResponseDone(response_id, usage=usage or {}))
    return outs


class ScriptedBrain:
    def __init__(
        self,
        fmt: AudioFormat = MULAW_8K,
        *,
        speak_ms_per_char: int = 50,
        on_tool_result: Callable[[str, Any], list[BrainOutput]] | None = None,
    ) -> None:
        self._fmt = fmt
        self._q: asyncio.Queue[BrainOutput | None] = asyncio.Queue()
        self._waiting = False
        self.ms_per_char = speak_ms_per_char
        self.on_tool_result = on_tool_result
        self.ctx: BrainContext | None = None
        self.audio_in = bytearray()
        self.dtmf: list[str] = []
        self.said: list[str] = []
        self.interrupts: list[float] = []
        self.tool_results: list[tuple[str, Any]] = []
        self.closed = False
        self.consumer_gone = False
        self.fail_start: Exception | None = None
        self._say_n = 0

    @property
    def input_format(self) -> AudioFormat:
        return self._fmt

    @property
    def output_format(self) -> AudioFormat:
        return self._fmt

    async def start(self, ctx: BrainContext) -> None:
        if self.fail_start is not None:
            raise self.fail_start
        self.ctx = ctx

    async def push_audio(self, payload: bytes) -> None:
        self.audio_in.extend(payload)

    async def push_dtmf(self, digit: str) -> None:
        self.dtmf.append(digit)

    def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        """The session's VAD; this brain does not use it."""

    async def outputs(self) -> AsyncIterator[BrainOutput]:
        try:
            while True:
                self._waiting = True
                out = await self._q.get()
                self._waiting = False
                if out is None:
                    return
                yield out
        finally:
            self.consumer_gone = True

    async def say(self, text: str) -> None:
        self.said.append(text)
        self._say_n += 1
        for out in reply(f"say-{self._say_n}", text, len(text) * self.ms_per_char, fmt=self._fmt):
            self._q.put_nowait(out)

    async def interrupt(self, heard_ms: float) -> None:
        self.interrupts.append(heard_ms)

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None:
        self.tool_results.append((tool_call_id, result))
        if self.on_tool_result is not None:
            for out in self.on_tool_result(tool_call_id, result):
                self._q.put_nowait(out)

    async def close(self) -> None:
        self.closed = True

    async def emit(self, *outs: BrainOutput, wait: bool = True) -> None:
        """Queue outputs; with ``wait``, until the session has taken them and asks for more."""
        for out in outs:
            self._q.put_nowait(out)
        if wait:
            await self.settle()

    def finish(self) -> None:
        self._q.put_nowait(None)

    async def settle(self) -> None:
        await settle(
            lambda: self.closed or self.consumer_gone or (self._q.empty() and self._waiting)
        )
