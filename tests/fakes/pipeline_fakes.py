"""Scripted STT and TTS that implement the provider protocols with real async streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.providers.base import Transcription


class ScriptedSTTStream:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Transcription | None] = asyncio.Queue()
        self.pushed = 0

    @property
    def audio_seconds(self) -> float:
        return self.pushed * 0.02

    async def push_audio(self, payload: bytes) -> None:
        self.pushed += 1

    async def results(self) -> AsyncIterator[Transcription]:
        while (item := await self.queue.get()) is not None:
            yield item

    async def finalize(self) -> None:
        return None

    async def close(self) -> None:
        self.queue.put_nowait(None)

    def say(self, text: str) -> None:
        """The caller says ``text`` and stops: interim, final, end of turn."""
        self.queue.put_nowait(Transcription(text[: len(text) // 2], final=False))
        self.queue.put_nowait(Transcription(text, final=True, end_of_turn=True))


class ScriptedSTT:
    name = "scripted"

    def __init__(self) -> None:
        self.streams: list[ScriptedSTTStream] = []

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    async def open(self, call_id: str) -> ScriptedSTTStream:
        stream = ScriptedSTTStream()
        self.streams.append(stream)
        return stream


class ScriptedTTS:
    """100 ms of audio per 10 characters, delivered in 20 ms chunks at real pace."""

    name = "scripted"

    def __init__(self, chunk_delay: float = 0.005) -> None:
        self.chunk_delay = chunk_delay
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_16K

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.started.append(text)
        chunks = max(1, len(text) // 2)
        try:
            for _ in range(chunks):
                await asyncio.sleep(self.chunk_delay)
                yield b"\x01\x00" * 320
        except (GeneratorExit, asyncio.CancelledError):
            self.cancelled.append(text)
            raise
        self.finished.append(text)

    async def close(self) -> None:
        return None
