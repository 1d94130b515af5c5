"""``EchoEngine``: plays the caller's audio straight back. A line test, not an agent.

It proves the whole path (webhook, media socket, transcoding both ways,
pacing, marks) without any AI provider, and serves as the brain of the load
benchmark. Its replies never end, so the agent using it should not be
interruptible (``phone.agent(engine=EchoEngine())`` sets that up).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from patter_core.audio.formats import SESSION_FORMAT, AudioFormat
from patter_core.brain import AgentAudio, BrainContext, BrainOutput


class EchoEngine:
    interruptible = False

    def __init__(self, audio_format: AudioFormat = SESSION_FORMAT) -> None:
        self._format = audio_format
        self._queue: asyncio.Queue[BrainOutput | None] = asyncio.Queue()
        self.frames = 0

    def create_brain(self) -> EchoEngine:
        return EchoEngine(self._format)

    @property
    def input_format(self) -> AudioFormat:
        return self._format

    @property
    def output_format(self) -> AudioFormat:
        return self._format

    async def start(self, ctx: BrainContext) -> None:
        return None

    async def push_audio(self, payload: bytes) -> None:
        self.frames += 1
        self._queue.put_nowait(AgentAudio(payload, response_id="echo"))

    async def push_dtmf(self, digit: str) -> None:
        return None

    def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        """The session's VAD; this brain does not use it."""

    async def outputs(self) -> AsyncIterator[BrainOutput]:
        while (item := await self._queue.get()) is not None:
            yield item

    async def say(self, text: str) -> None:
        return None  # an echo has nothing of its own to say

    async def interrupt(self, heard_ms: float) -> None:
        return None

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None:
        return None

    async def close(self) -> None:
        self._queue.put_nowait(None)
