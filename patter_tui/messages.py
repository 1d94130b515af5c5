"""Textual messages the event feed sends to the app, and the app forwards to screens."""

from __future__ import annotations

from textual.message import Message

from patter_core.events import Event
from patter_tui.state import Line
from patterd.client import m


class Connected(Message):
    """The events stream is up; ``restarted`` when the daemon is a new process."""

    def __init__(self, status: m.Status, restarted: bool) -> None:
        super().__init__()
        self.status = status
        self.restarted = restarted


class Disconnected(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class DaemonEvent(Message):
    """One event from the daemon (the feed posts it to the app)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class EventsMissed(Message):
    def __init__(self, missed: int) -> None:
        super().__init__()
        self.missed = missed


class CallUpdated(Message):
    """The app folded an event into a call: screens showing that call refresh."""

    def __init__(self, event: Event, lines: list[Line]) -> None:
        super().__init__()
        self.event = event
        self.lines = lines


class ConnectionChanged(Message):
    def __init__(self, connected: bool) -> None:
        super().__init__()
        self.connected = connected


class LiveChanged(Message):
    """The app re-read the live calls list."""
