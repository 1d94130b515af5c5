"""Drive a Brain in tests: collect its outputs in the background and wait on them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from patter_core.brain import Brain, BrainOutput

T = TypeVar("T")


class Outputs:
    def __init__(self, brain: Brain) -> None:
        self.items: list[BrainOutput] = []
        self.ended = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._pump(brain))

    async def _pump(self, brain: Brain) -> None:
        async for out in brain.outputs():
            self.items.append(out)
            self._changed.set()
        self.ended = True
        self._changed.set()

    def of(self, kind: type[T]) -> list[T]:
        return [o for o in self.items if isinstance(o, kind)]

    async def until(self, predicate: Callable[[Outputs], Any]) -> None:
        while not predicate(self):
            if self.ended:
                raise AssertionError(f"outputs ended first: {self.items[-5:]}")
            self._changed.clear()
            await self._changed.wait()

    async def count(self, kind: type[Any], n: int) -> None:
        await self.until(lambda o: len(o.of(kind)) >= n)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
