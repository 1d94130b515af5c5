"""How late the event loop runs a timer: the stall every live call's audio feels.

A GC pause, a blocking call or a saturated core all show up here the same way,
which is why this is measured directly rather than inferred from CPU figures.
"""

from __future__ import annotations

import asyncio

from patterd.metrics import Histogram

INTERVAL_S = 0.1


async def watch_loop_lag(histogram: Histogram, interval: float = INTERVAL_S) -> None:
    """Sleep ``interval`` at a time and record how much later than asked each wake-up came."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval
        await asyncio.sleep(interval)
        histogram.observe(max(loop.time() - due, 0.0))
