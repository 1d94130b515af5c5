"""A bounded in-memory log of recent events, each with a daemon-wide position.

Per-call ``seq`` cannot resume a stream over all calls, so every event the
daemon sees gets a monotonic position here. A client that reconnects with
``since=<position>`` is replayed whatever is still in memory and told how
many it missed if the ring has already moved past it.

Positions start again at 1 when the daemon restarts, so each log has an
``instance`` id: a position is only meaningful together with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from patter_core.bus import EventBus, Gap
from patter_core.events import BaseEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    pos: int
    event: BaseEvent


class EventLog:
    def __init__(self, capacity: int = 5000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._ring: deque[Entry] = deque(maxlen=capacity)
        self._last = 0
        self._changed = asyncio.Event()
        self.closed = False
        self.instance = uuid.uuid4().hex

    @property
    def last_pos(self) -> int:
        return self._last

    @property
    def first_pos(self) -> int:
        """Oldest position still in memory (``last_pos + 1`` when empty)."""
        return self._ring[0].pos if self._ring else self._last + 1

    def append(self, event: BaseEvent) -> int:
        self._last += 1
        self._ring.append(Entry(self._last, event))
        self._changed.set()
        return self._last

    def skip(self, missed: int) -> None:
        """Positions for events the log itself missed, so readers see a gap rather than nothing."""
        self._last += missed
        self._changed.set()

    def knows(self, pos: int, instance: str | None = None) -> bool:
        """Whether ``pos`` (of ``instance``, when given) is a position of this log.

        False for a position ahead of the last one or from another instance: a
        cursor from a daemon that has since restarted.
        """
        return pos <= self._last and (instance is None or instance == self.instance)

    def after(self, pos: int) -> tuple[int, list[Entry]]:
        """(missed count, entries after ``pos`` still in memory)."""
        entries = [e for e in self._ring if e.pos > pos] if pos < self._last else []
        first = entries[0].pos if entries else self._last + 1
        missed = max(0, first - pos - 1)
        return missed, entries

    async def wait_beyond(self, pos: int, idle_s: float) -> bool:
        """Wait until something newer than ``pos`` exists (True) or timeout/close (False)."""
        while self._last <= pos and not self.closed:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), idle_s)
            except TimeoutError:
                return False
        return self._last > pos

    def close(self) -> None:
        self.closed = True
        self._changed.set()


class EventPump:
    """Owns one bus subscription and feeds every event to the log and observers."""

    def __init__(
        self, bus: EventBus, log_: EventLog, observers: list[Callable[[BaseEvent], None]]
    ) -> None:
        self._sub = bus.subscribe(maxsize=10_000, name="patterd")
        self._log = log_
        self._observers = observers
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="patterd-event-pump")

    async def _run(self) -> None:
        async for item in self._sub:
            if isinstance(item, Gap):
                self._log.skip(item.missed)
                continue
            self._log.append(item)
            for observe in self._observers:
                try:
                    observe(item)
                except Exception:
                    log.exception("event observer failed on a %s event", type(item).__name__)

    async def aclose(self) -> None:
        self._sub.close()
        if self._task is not None:
            # Closing queues an end marker behind what is buffered, so the pump drains first.
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self._log.close()
