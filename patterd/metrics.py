"""Prometheus text exposition (format 0.0.4), fed from events.

A handful of counters and two histograms do not justify a dependency; the
format is small and stable.
"""

from __future__ import annotations

import bisect
import time
from collections import defaultdict
from collections.abc import Callable

from patter_core.bus import EventBus
from patter_core.events import BargeIn, BaseEvent, CallEnded, CallStarted, ErrorEvent, TurnMetrics
from patter_core.server.app import REFUSAL_REASONS

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
BARGE_IN_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)
# Stalls of the event loop: audio frames are 20 ms apart, so the buckets are fine below it.
STALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
GC_GENERATIONS = (0, 1, 2)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        for j in range(i, len(self.buckets)):
            self.counts[j] += 1
        self.total += 1
        self.sum += value

    def lines(self, name: str, labels: str = "") -> list[str]:
        """Exposition lines; ``labels`` (``k="v",…``) go on every series."""
        pre = labels + "," if labels else ""
        own = "{" + labels + "}" if labels else ""
        out = [
            f'{name}_bucket{{{pre}le="{_num(b)}"}} {c}'
            for b, c in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{{pre}le="+Inf"}} {self.total}')
        out.append(f"{name}_sum{own} {_num(self.sum)}")
        out.append(f"{name}_count{own} {self.total}")
        return out


def _num(v: float) -> str:
    return repr(float(v))


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self, bus: EventBus, live_calls: Callable[[], int]) -> None:
        self._bus = bus
        self._live_calls = live_calls
        self._started = time.monotonic()
        self.calls_started: dict[str, int] = defaultdict(int)
        self.calls_ended: dict[str, int] = defaultdict(int)
        self.calls_refused: dict[str, int] = defaultdict(int)
        self.cost: dict[str, float] = defaultdict(float)
        self.provider_errors: dict[str, int] = defaultdict(int)
        self.turn_latency = Histogram(LATENCY_BUCKETS)
        self.barge_in = Histogram(BARGE_IN_BUCKETS)
        self.loop_lag = Histogram(STALL_BUCKETS)
        self.gc_pause = {gen: Histogram(STALL_BUCKETS) for gen in GC_GENERATIONS}
        self.gc_frozen = 0

    def observe(self, event: BaseEvent) -> None:
        if isinstance(event, CallStarted):
            self.calls_started[event.direction] += 1
        elif isinstance(event, CallEnded):
            self.calls_ended[event.status or "unknown"] += 1
            if event.reason in REFUSAL_REASONS:
                self.calls_refused[event.reason] += 1
        elif isinstance(event, TurnMetrics):
            ms = event.latency.end_of_speech_to_first_audio_ms
            if ms is not None:
                self.turn_latency.observe(ms / 1000.0)
            for part in ("carrier", "stt", "llm", "tts", "realtime"):
                amount = getattr(event.cost, part)
                if amount:
                    self.cost[part] += amount
        elif isinstance(event, BargeIn):
            self.barge_in.observe(event.detect_to_clear_ms / 1000.0)
        elif isinstance(event, ErrorEvent):
            self.provider_errors[event.code] += 1

    def render(self) -> str:
        lines: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")

        family("patter_up", "gauge", "1 while patterd is serving.")
        lines.append("patter_up 1")
        family("patter_uptime_seconds", "gauge", "Seconds since patterd started.")
        lines.append(f"patter_uptime_seconds {time.monotonic() - self._started:.3f}")
        family("patter_live_calls", "gauge", "Calls in progress now.")
        lines.append(f"patter_live_calls {self._live_calls()}")
        family("patter_calls_started_total", "counter", "Calls started, by direction.")
        for direction, n in sorted(self.calls_started.items()):
            lines.append(f'patter_calls_started_total{{direction="{_label(direction)}"}} {n}')
        family("patter_calls_total", "counter", "Calls ended, by outcome.")
        for outcome, n in sorted(self.calls_ended.items()):
            lines.append(f'patter_calls_total{{outcome="{_label(outcome)}"}} {n}')
        family(
            "patter_calls_refused_total",
            "counter",
            "Inbound calls refused with busy before answering, by reason (at_capacity, draining).",
        )
        for reason, n in sorted(self.calls_refused.items()):
            lines.append(f'patter_calls_refused_total{{reason="{_label(reason)}"}} {n}')
        family(
            "patter_turn_latency_seconds",
            "histogram",
            "End of caller speech to first agent audio sent.",
        )
        lines.extend(self.turn_latency.lines("patter_turn_latency_seconds"))
        family("patter_barge_in_seconds", "histogram", "Barge-in detection to playback cleared.")
        lines.extend(self.barge_in.lines("patter_barge_in_seconds"))
        family(
            "patter_event_loop_lag_seconds",
            "histogram",
            "How late the event loop ran a 100 ms timer (stalls calls hear as gaps).",
        )
        lines.extend(self.loop_lag.lines("patter_event_loop_lag_seconds"))
        family(
            "patter_gc_pause_seconds",
            "histogram",
            "Garbage collector pauses, by generation (2 is a full pass).",
        )
        for gen, hist in sorted(self.gc_pause.items()):
            lines.extend(hist.lines("patter_gc_pause_seconds", f'generation="{gen}"'))
        family(
            "patter_gc_frozen_objects",
            "gauge",
            "Start-up objects kept out of the collector's passes.",
        )
        lines.append(f"patter_gc_frozen_objects {self.gc_frozen}")
        family("patter_cost_usd_total", "counter", "Estimated spend in US dollars, by part.")
        for part, amount in sorted(self.cost.items()):
            lines.append(f'patter_cost_usd_total{{part="{_label(part)}"}} {amount:.6f}')
        family("patter_provider_errors_total", "counter", "Error events, by code.")
        for code, n in sorted(self.provider_errors.items()):
            lines.append(f'patter_provider_errors_total{{code="{_label(code)}"}} {n}')
        family("patter_events_published_total", "counter", "Events published on the bus.")
        lines.append(f"patter_events_published_total {self._bus.published_total}")
        family("patter_event_bus_dropped_total", "counter", "Events dropped for slow subscribers.")
        lines.append(f"patter_event_bus_dropped_total {self._bus.dropped_total}")
        return "\n".join(lines) + "\n"
