"""Follow the daemon's events stream forever, across disconnects and daemon restarts.

The client resumes from the last position it saw; when the daemon came back as a
new process (its pid changed) positions restart, so the feed replays from the start
of the new daemon's log instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from textual.message import Message

from patter_tui.errors import FEED_ERRORS, describe, first_line
from patter_tui.messages import Connected, DaemonEvent, Disconnected, EventsMissed
from patterd.client import PatterClient

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.2
RETRY_MAX_S = 2.0


class EventFeed:
    def __init__(self, client: PatterClient, post: Callable[[Message], object]) -> None:
        self.client = client
        self.post = post
        self.position = 0
        self.pid: int | None = None
        self._up = False

    async def run(self) -> None:
        """Never returns on its own; the app's worker cancels it."""
        delay = RETRY_MIN_S
        while True:
            self._up = False
            try:
                await self._follow()
                reason = "the daemon closed the events stream"
            except FEED_ERRORS as exc:
                reason = first_line(describe(exc, self.client.socket_path))
            if self._up:
                delay = RETRY_MIN_S
            self.post(Disconnected(reason))
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)

    async def _follow(self) -> None:
        status = await self.client.status()
        restarted = self.pid is not None and status.pid != self.pid
        if restarted:
            self.position = 0
        self.pid = status.pid
        self._up = True
        self.post(Connected(status, restarted))
        async for item in self.client.events(since=self.position, reconnect_for_s=0):
            self.position = item.pos
            if item.event is not None:
                self.post(DaemonEvent(item.event))
            elif item.missed:
                self.post(EventsMissed(item.missed))
