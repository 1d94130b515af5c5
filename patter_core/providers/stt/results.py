"""The queue between an STT stream's reader and whoever iterates ``results()``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from patter_core.providers.base import ProviderError, Transcription

_END = object()


class ResultChannel:
    """Transcriptions in order, then either a clean end or the stream's error.

    ``results()`` raises the ``ProviderError`` that ended the stream, so a
    consumer learns about a dropped provider where it is already waiting.
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Transcription | object] = asyncio.Queue()
        self._error: ProviderError | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def put(self, item: Transcription) -> None:
        if not self._ended:
            self._queue.put_nowait(item)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(_END)

    def fail(self, error: ProviderError) -> None:
        if not self._ended:
            self._error = error
            self.end()

    async def iterate(self) -> AsyncIterator[Transcription]:
        while True:
            item = await self._queue.get()
            if item is _END:
                self._queue.put_nowait(_END)  # a second iterator also ends
                if self._error is not None:
                    raise self._error
                return
            assert isinstance(item, Transcription)
            yield item
