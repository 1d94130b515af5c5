"""An in-process CarrierLeg with a playout clock driven by the caller's audio.

Real carriers send caller audio in 20 ms frames in real time while they play
our audio, so here every caller frame fed advances playback by 20 ms: queued
agent audio is consumed, and marks come back when playback reaches them.
``clear`` drops unplayed audio and echoes pending marks at once, as Twilio does.
Nothing depends on wall-clock time, so tests are deterministic.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from patter_core.audio.formats import MULAW_8K, AudioFormat
from patter_core.carriers.base import (
    LegAudio,
    LegDtmf,
    LegEvent,
    LegMark,
    LegStarted,
    LegStopped,
)

FRAME_MS = 20


async def settle(check: Callable[[], bool], rounds: int = 2000) -> None:
    """Yield to the loop until ``check()`` holds a few times in a row (the consumer caught up)."""
    stable = 0
    for _ in range(rounds):
        await asyncio.sleep(0)
        if check():
            stable += 1
            if stable >= 5:
                return
        else:
            stable = 0
    raise AssertionError("consumer did not catch up")


class MemoryLeg:
    def __init__(self, call_id: str = "call-1", fmt: AudioFormat = MULAW_8K) -> None:
        self._call_id = call_id
        self._fmt = fmt
        self._q: asyncio.Queue[LegEvent] = asyncio.Queue()
        self._waiting = False
        self._queue: deque[bytes | str] = deque()
        self.now_ms = 0.0
        self.sent = bytearray()
        self.played = bytearray()
        self.clears: list[float] = []
        self.marks_sent: list[str] = []
        self.wire_log: list[int | str] = []  # what went out in order: piece sizes and mark names
        self.closed = False
        self.stopped = False

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def wire_format(self) -> AudioFormat:
        return self._fmt

    def clock(self) -> float:
        return self.now_ms / 1000.0

    async def events(self) -> AsyncIterator[LegEvent]:
        while True:
            self._waiting = True
            ev = await self._q.get()
            self._waiting = False
            if isinstance(ev, LegStopped):
                self.stopped = True
            yield ev
            if self.stopped:
                return

    async def send_audio(self, payload: bytes) -> None:
        if self.closed:
            raise ConnectionError("leg closed")
        self.sent.extend(payload)
        self.wire_log.append(len(payload))
        self._queue.append(bytes(payload))

    async def send_mark(self, name: str) -> None:
        self.marks_sent.append(name)
        self.wire_log.append(name)
        self._queue.append(name)
        self._play(0)

    async def clear(self) -> None:
        self.clears.append(self.now_ms)
        pending = [m for m in self._queue if isinstance(m, str)]
        self._queue.clear()
        for name in pending:
            self._q.put_nowait(LegMark(name))

    async def close(self) -> None:
        self.closed = True

    def _play(self, ms: float) -> None:
        budget = self._fmt.bytes_for_ms(int(ms)) if ms else 0
        while self._queue:
            head = self._queue[0]
            if isinstance(head, str):
                self._queue.popleft()
                self._q.put_nowait(LegMark(head))
                continue
            if budget <= 0:
                break
            take = head[:budget]
            self.played.extend(take)
            budget -= len(take)
            if len(take) == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[len(take) :]

    @property
    def queued_ms(self) -> float:
        n = sum(len(x) for x in self._queue if isinstance(x, bytes))
        return n / self._fmt.bytes_for_ms(1000) * 1000.0

    @property
    def played_ms(self) -> float:
        return len(self.played) / self._fmt.bytes_for_ms(1000) * 1000.0

    async def settle(self) -> None:
        await settle(lambda: self.stopped or self.closed or (self._q.empty() and self._waiting))

    async def start(self, stream_id: str = "MZ1") -> None:
        self._q.put_nowait(LegStarted(stream_id, "CA1"))
        await self.settle()

    async def feed(self, wire_audio: bytes) -> None:
        """Caller audio in wire format, 20 ms at a time, advancing playout in step."""
        step = self._fmt.bytes_for_ms(FRAME_MS)
        for i in range(0, len(wire_audio), step):
            if self.stopped:
                return
            self._play(FRAME_MS)
            self._q.put_nowait(LegAudio(wire_audio[i : i + step], self.now_ms))
            self.now_ms += FRAME_MS
            await self.settle()

    async def dtmf(self, digit: str) -> None:
        self._q.put_nowait(LegDtmf(digit))
        await self.settle()

    def stop(self, reason: str = "hangup") -> None:
        self._q.put_nowait(LegStopped(reason))  # type: ignore[arg-type]
