"""SDK callbacks (on_call_start, on_call_end, on_transcript, on_metrics) as bus subscribers.

Each callback gets a plain dict (the event's fields; ``on_call_end`` also
gets the call's final ``transcript`` list). A callback that raises is
logged and the rest carry on; a slow one only delays its own subscriber.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from patter_core.bus import EventBus, Gap
from patter_core.events import BaseEvent, CallEnded, CallStarted, Transcript, TurnMetrics

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], Awaitable[None] | None]


class CallbackRunner:
    def __init__(
        self,
        bus: EventBus,
        *,
        on_call_start: Callback | None = None,
        on_call_end: Callback | None = None,
        on_transcript: Callback | None = None,
        on_metrics: Callback | None = None,
        maxsize: int = 10_000,
    ) -> None:
        self._cbs = {
            "call.started": on_call_start,
            "call.ended": on_call_end,
            "transcript": on_transcript,
            "turn.metrics": on_metrics,
        }
        wanted = {k for k, v in self._cbs.items() if v is not None} | {"transcript", "call.ended"}
        self._sub = bus.subscribe(
            maxsize=maxsize,
            predicate=lambda e: getattr(e, "type", "") in wanted,
            name="sdk-callbacks",
        )
        self._transcripts: dict[str, list[dict[str, Any]]] = {}
        self._starts: dict[str, dict[str, Any]] = {}
        self.errors = 0

    async def run(self) -> None:
        """Deliver until the subscription closes (``close()`` or the bus closing)."""
        async for item in self._sub:
            if isinstance(item, Gap):
                log.warning("callbacks missed %d events", item.missed)
                continue
            await self._deliver(item)

    def close(self) -> None:
        self._sub.close()

    async def _deliver(self, event: BaseEvent) -> None:
        payload = event.model_dump(mode="json")
        cid = event.call_id
        if isinstance(event, CallStarted):
            self._starts[cid] = payload
        elif isinstance(event, Transcript):
            if event.final:
                self._transcripts.setdefault(cid, []).append(
                    {"role": event.role, "text": event.text, "turn": event.turn}
                )
        elif isinstance(event, CallEnded):
            start = self._starts.pop(cid, {})
            for key in ("caller", "callee", "direction"):
                payload.setdefault(key, start.get(key, ""))
            payload["transcript"] = self._transcripts.pop(cid, [])
        elif isinstance(event, TurnMetrics):
            payload["total_cost"] = event.total_cost
        cb = self._cbs.get(payload["type"])
        if cb is None or (isinstance(event, Transcript) and not event.final):
            return
        try:
            out = cb(payload)
            if inspect.isawaitable(out):
                await out
        except asyncio.CancelledError:
            raise
        except Exception:
            self.errors += 1
            log.exception("%s callback failed for call %s", payload["type"], cid)
