"""OpenTelemetry traces from call events: one span per call, one child span per turn.

Optional (``pip install patter[otel]``) and off by default. It only observes
events, so a slow or missing collector can never touch a call.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from patter_core.events import BaseEvent

log = logging.getLogger(__name__)


def _ns(ts: datetime) -> int:
    return int(ts.timestamp() * 1_000_000_000)


class CallTracer:
    """Feed it every event (``observe``); it opens and closes spans as calls go."""

    def __init__(self, tracer_provider: Any = None) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise RuntimeError("tracing needs the otel extra: pip install 'patter[otel]'") from exc
        self._trace = trace
        self._tracer = trace.get_tracer("patter", tracer_provider=tracer_provider)
        self._calls: dict[str, Any] = {}

    def observe(self, event: BaseEvent) -> None:
        self._observe(event)

    def _observe(self, event: Any) -> None:
        kind = getattr(event, "type", "")
        if kind == "call.started":
            started = self._tracer.start_span(
                "call",
                start_time=_ns(event.ts),
                attributes={
                    "patter.call_id": event.call_id,
                    "patter.direction": getattr(event, "direction", ""),
                    "patter.carrier": getattr(event, "carrier", ""),
                    "patter.agent": getattr(event, "agent", ""),
                },
            )
            self._calls[event.call_id] = started
            return
        span = self._calls.get(event.call_id)
        if span is None:
            return
        if kind == "turn.metrics":
            self._turn(span, event)
        elif kind == "barge_in":
            span.add_event(
                "barge_in",
                {
                    "patter.heard_ms": event.heard_ms,
                    "patter.detect_to_clear_ms": event.detect_to_clear_ms,
                },
                timestamp=_ns(event.ts),
            )
        elif kind == "error":
            span.add_event("error", {"patter.code": event.code}, timestamp=_ns(event.ts))
        elif kind == "call.ended":
            span.set_attribute("patter.reason", getattr(event, "reason", ""))
            span.set_attribute("patter.duration_s", getattr(event, "duration_s", 0.0))
            cost = getattr(event, "cost", None)
            if cost is not None:
                span.set_attribute("patter.cost_usd", cost.total)
            if getattr(event, "reason", "") in ("engine_error", "error", "interrupted"):
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.reason))
            span.end(end_time=_ns(event.ts))
            del self._calls[event.call_id]

    def _turn(self, call_span: Any, event: Any) -> None:
        latency = event.latency
        ctx = self._trace.set_span_in_context(call_span)
        took = latency.end_of_speech_to_first_heard_ms or latency.end_of_speech_to_first_audio_ms
        end = _ns(event.ts)
        start = end - int((took or 0) * 1_000_000)
        attributes: dict[str, Any] = {
            "patter.turn": event.turn,
            "patter.cost_usd": event.cost.total,
        }
        for name, value in latency.model_dump().items():
            if value is not None:
                attributes[f"patter.latency.{name}"] = value
        turn = self._tracer.start_span("turn", context=ctx, start_time=start, attributes=attributes)
        turn.end(end_time=end)

    def close(self) -> None:
        """End spans of calls still open (shutdown); they are marked unfinished."""
        for span in self._calls.values():
            span.set_attribute("patter.unfinished", True)
            span.end()
        self._calls.clear()
