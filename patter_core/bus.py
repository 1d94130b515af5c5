"""In-process publish/subscribe for events.

Publishing never waits: each subscriber owns a bounded queue, and when it is
full the event is dropped *for that subscriber only* and counted, so a stuck
console can never slow a live call. The next item the subscriber reads is a
:class:`Gap` saying how many it missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from patter_core.events import BaseEvent

log = logging.getLogger(__name__)

SEQ_MEMORY = 10_000


@dataclass(frozen=True, slots=True)
class Gap:
    """Stands in the stream where ``missed`` events were dropped for a slow reader."""

    missed: int


class Subscription:
    def __init__(
        self,
        bus: EventBus,
        maxsize: int,
        predicate: Callable[[BaseEvent], bool] | None,
        name: str,
    ) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[BaseEvent | Gap | None] = asyncio.Queue(maxsize)
        self._predicate = predicate
        self._pending_gap = 0
        self.missed_total = 0
        self.name = name
        self.closed = False

    def _offer(self, event: BaseEvent) -> None:
        if self.closed or (self._predicate is not None and not self._predicate(event)):
            return
        if self._pending_gap:
            # Keep one free slot for the gap marker before anything newer.
            if self._queue.qsize() >= self._queue.maxsize - 1:
                self._note_drop()
                return
            self._queue.put_nowait(Gap(self._pending_gap))
            self._pending_gap = 0
        if self._queue.full():
            self._note_drop()
            return
        self._queue.put_nowait(event)

    def _note_drop(self) -> None:
        if self._pending_gap == 0:
            log.warning("event subscriber %r is falling behind; dropping events", self.name)
        self._pending_gap += 1
        self.missed_total += 1
        self._bus.dropped_total += 1

    async def get(self) -> BaseEvent | Gap:
        """Next event, or a Gap; raises ``StopAsyncIteration`` once closed and drained."""
        if self._queue.empty() and self._pending_gap:
            gap, self._pending_gap = Gap(self._pending_gap), 0
            return gap
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    def get_nowait(self) -> BaseEvent | Gap | None:
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            if self._pending_gap:
                gap, self._pending_gap = Gap(self._pending_gap), 0
                return gap
            return None
        return item

    def qsize(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._bus._unsubscribe(self)
        while self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[BaseEvent | Gap]:
        return self

    async def __anext__(self) -> BaseEvent | Gap:
        return await self.get()


class EventBus:
    """Stamps per-call sequence numbers and fans events out to subscribers."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        # Bounded: recording callbacks can arrive after call.ended, so counters
        # outlive the call, but the oldest calls' counters are forgotten.
        self._seq: OrderedDict[str, int] = OrderedDict()
        self.published_total = 0
        self.dropped_total = 0

    def subscribe(
        self,
        *,
        maxsize: int = 1000,
        call_id: str | None = None,
        predicate: Callable[[BaseEvent], bool] | None = None,
        name: str = "subscriber",
    ) -> Subscription:
        if maxsize < 2:
            raise ValueError("maxsize must be at least 2 (one slot is kept for gap markers)")
        if call_id is not None:
            inner = predicate

            def predicate(ev: BaseEvent) -> bool:
                return ev.call_id == call_id and (inner is None or inner(ev))

        sub = Subscription(self, maxsize, predicate, name)
        self._subs.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    def next_seq(self, call_id: str) -> int:
        seq = self._seq.get(call_id, 0) + 1
        self._remember(call_id, seq)
        return seq

    def _remember(self, call_id: str, seq: int) -> None:
        self._seq[call_id] = seq
        self._seq.move_to_end(call_id)
        while len(self._seq) > SEQ_MEMORY:
            self._seq.popitem(last=False)

    def publish(self, event: BaseEvent) -> BaseEvent:
        """Stamp ``seq`` (if unset) and deliver without blocking; returns the event."""
        if event.seq == 0:
            event.seq = self.next_seq(event.call_id)
        else:
            self._remember(event.call_id, max(self._seq.get(event.call_id, 0), event.seq))
        self.published_total += 1
        for sub in tuple(self._subs):
            sub._offer(event)
        return event

    @property
    def subscriber_count(self) -> int:
        return len(self._subs)

    def close(self) -> None:
        for sub in tuple(self._subs):
            sub.close()
