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

LATENCY_BUCKETS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
BARGE_IN_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


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

    def lines(self, name: str) -> list[str]:
        out = [
            f'{name}_bucket{{le="{_num(b)}"}} {c}'
            for b, c in zip(self.buckets, self.counts, strict=True)
        ]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.total}')
        out.append(f"{name}_sum {_num(self.sum)}")
        out.append(f"{name}_count {self.total}")
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
        self.cost: dict[str, float] = defaultdict(float)
        self.provider_errors: dict[str, int] = defaultdict(int)
        self.turn_latency = Histogram(LATENCY_BUCKETS)
        self.barge_in = Histogram(BARGE_IN_BUCKETS)

    def observe(self, event: BaseEvent) -> None:
        if isinstance(event, CallStarted):
            self.calls_started[event.direction] += 1
        elif isinstance(event, CallEnded):
            self.calls_ended[event.status or "unknown"] += 1
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
            "patter_turn_latency_seconds",
            "histogram",
            "End of caller speech to first agent audio sent.",
        )
        lines.extend(self.turn_latency.lines("patter_turn_latency_seconds"))
        family("patter_barge_in_seconds", "histogram", "Barge-in detection to playback cleared.")
        lines.extend(self.barge_in.lines("patter_barge_in_seconds"))
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
