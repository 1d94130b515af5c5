"""A scripted STT and a fake TTS implementing the provider protocols.

The STT plays back transcriptions the test feeds it (``say_final``...); the TTS
turns text into PCM (10 ms per character, every byte the 1-based number of
the synthesis, so tests can check order) in 20 ms chunks, and
records which syntheses finished and which were closed part-way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.providers.base import Transcription

MS_PER_CHAR = 10


class ScriptedSTTStream:
    def __init__(self) -> None:
        self._q: asyncio.Queue[Transcription | None] = asyncio.Queue()
        self.audio_bytes = 0
        self.finalized = 0
        self.closed = False
        self._taken = asyncio.Event()

    async def push_audio(self, payload: bytes) -> None:
        self.audio_bytes += len(payload)

    async def results(self) -> AsyncIterator[Transcription]:
        while (item := await self._q.get()) is not None:
            self._taken.set()
            yield item

    async def finalize(self) -> None:
        self.finalized += 1

    async def close(self) -> None:
        self.closed = True
        self._q.put_nowait(None)

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / PCM16_16K.bytes_for_ms(1000)

    def emit(self, result: Transcription) -> None:
        self._q.put_nowait(result)

    async def drained(self) -> None:
        """Every emitted result has been taken by the reader."""
        while not self._q.empty():
            self._taken.clear()
            await self._taken.wait()

    def turn(self, text: str) -> None:
        """An interim, then the final flagged as the end of the turn."""
        self.emit(Transcription(text[: len(text) // 2], final=False))
        self.emit(Transcription(text, final=True, end_of_turn=True))


class ScriptedSTT:
    name = "scripted-stt"

    def __init__(self) -> None:
        self.stream = ScriptedSTTStream()

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    async def open(self, call_id: str) -> ScriptedSTTStream:
        return self.stream


class FakeTTS:
    name = "fake-tts"

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.closed_early: list[str] = []
        self.hold: dict[str, asyncio.Event] = {}  # text -> gate after the first chunk
        self.changed = asyncio.Event()

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_16K

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.started.append(text)
        fill = bytes([len(self.started) % 256])  # audio says which synthesis made it
        self.changed.set()
        total = PCM16_16K.bytes_for_ms(MS_PER_CHAR) * len(text)
        step = PCM16_16K.bytes_for_ms(20)
        sent = 0
        done = False
        try:
            while sent < total:
                n = min(step, total - sent)
                yield fill * n
                sent += n
                if text in self.hold:
                    await self.hold[text].wait()
                await asyncio.sleep(0)
            done = True
        finally:
            (self.finished if done else self.closed_early).append(text)
            self.changed.set()

    async def until(self, predicate: object) -> None:
        assert callable(predicate)
        while not predicate(self):
            self.changed.clear()
            await self.changed.wait()

    async def close(self) -> None:
        return None
