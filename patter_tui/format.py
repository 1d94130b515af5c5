"""Short, fixed-width renderings of durations, money, latencies and numbers for tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def cost(dollars: float | None) -> str:
    return "–" if dollars is None else f"${dollars:.3f}"


def latency(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.0f} ms"


def when(value: Any) -> str:
    """A stored timestamp as ``MM-DD HH:MM`` (what fits a history row at 80 columns)."""
    if isinstance(value, datetime):
        return value.strftime("%m-%d %H:%M")
    text = str(value or "")
    try:
        return datetime.fromisoformat(text).strftime("%m-%d %H:%M")
    except ValueError:
        return text[:11]


def other_party(direction: str, caller: str, callee: str) -> str:
    """The number on the far side of the call: who called us, or whom we called."""
    return (callee if direction == "outbound" else caller) or "unknown"


def arrow(direction: str) -> str:
    return "out" if direction == "outbound" else "in"


def live_of(live: int, limit: int | None) -> str:
    """Live calls, against the daemon's ``max_calls`` when it has one."""
    return str(live) if limit is None else f"{live} of {limit} (max_calls)"
