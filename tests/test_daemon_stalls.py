"""The daemon's stall instruments: heap freezing, GC pause timing, event-loop lag."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator

import pytest

from patterd.heap import GcPauses, freeze_startup_heap
from patterd.looplag import watch_loop_lag
from patterd.metrics import STALL_BUCKETS, Histogram


@pytest.fixture
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_freezing_takes_the_startup_heap_out_of_full_passes(thawed: None) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count()
    assert frozen > 10_000  # pytest, pydantic, aiohttp … are all loaded by now
    # A full pass now walks only what was created after the freeze.
    assert len(gc.get_objects()) < frozen


def test_gc_pauses_are_timed_by_generation_only_while_installed() -> None:
    hists = {gen: Histogram(STALL_BUCKETS) for gen in (0, 1, 2)}
    pauses = GcPauses(hists)
    pauses.install()
    pauses.install()  # idempotent: one callback, one observation per pass
    try:
        gc.collect(2)
        gc.collect(1)
    finally:
        pauses.remove()
    assert hists[2].total == 1 and hists[1].total >= 1
    assert hists[2].sum > 0
    gc.collect(2)
    assert hists[2].total == 1
    pauses.remove()  # removing twice is harmless


async def test_loop_lag_records_a_blocked_loop() -> None:
    hist = Histogram(STALL_BUCKETS)
    task = asyncio.create_task(watch_loop_lag(hist, interval=0.02))
    try:
        await asyncio.sleep(0.1)
        quiet = hist.total
        assert quiet >= 2
        time.sleep(0.15)  # noqa: ASYNC251 - the stall under test, as a long GC pass would be
        await asyncio.sleep(0.06)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert hist.total > quiet
    over_100ms = hist.total - hist.counts[STALL_BUCKETS.index(0.1)]
    assert over_100ms == 1
