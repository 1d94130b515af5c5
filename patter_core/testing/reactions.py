"""The background work a simulated carrier does on its own: hang-ups, webhooks, dialling."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class Reactions:
    """Owns every task a simulator starts, so none outlives it.

    ``brief`` reactions (a hang-up and the webhooks that follow) can be settled:
    a test that stops its server right after ``call.ended`` would otherwise race
    the carrier's last webhook, which a real carrier sends regardless.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._brief: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any, *, brief: bool = False) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if brief:
            self._brief.add(task)
            task.add_done_callback(self._brief.discard)

    async def settle(self, timeout: float = 5.0) -> None:
        pending = [t for t in self._brief if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
