"""A PatterClient that answers from fixed, recorded data: deterministic screens for snapshots.

Every timestamp is fixed and the app gets a fixed clock, so durations and
uptimes render the same on every run. The live paths are covered against a
real patterd in tests/test_tui.py; this only freezes what the screens show.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from patter_core.events import (
    AmdResult,
    BargeIn,
    CallAnswered,
    CallStarted,
    CostParts,
    Dtmf,
    Event,
    LatencyParts,
    ToolCalled,
    ToolResult,
    Transcript,
    TurnMetrics,
)
from patter_tui.app import PatterApp
from patter_tui.widgets.transcript import TranscriptView
from patterd.client import LiveCall, PatterClient, StreamItem, m
from tests.support.tui import wait_for

NOW = datetime(2025, 3, 14, 15, 9, 30, tzinfo=UTC)
SOCKET = Path("/run/user/1000/patter/patterd.sock")


def _at(seconds_ago: float) -> datetime:
    return NOW - timedelta(seconds=seconds_ago)


LIVE = [
    LiveCall(
        call_id="c-7f3a",
        direction="outbound",
        caller="+15557654321",
        callee="+15551234567",
        agent="receptionist",
        state="in-progress",
        started_at=_at(134),
    ),
    LiveCall(
        call_id="c-81be",
        direction="inbound",
        caller="+447700900123",
        callee="+15557654321",
        agent="support",
        state="ringing",
        started_at=_at(4),
    ),
]


def _events() -> list[Event]:
    cid = "c-7f3a"
    t = _at(134)

    def ts(s: float) -> datetime:
        return t + timedelta(seconds=s)

    def metrics(turn: int, ms: float, cost: float, total: float, at: float) -> TurnMetrics:
        return TurnMetrics(
            call_id=cid,
            turn=turn,
            latency=LatencyParts(end_of_speech_to_first_audio_ms=ms),
            cost=CostParts(llm=cost),
            total_cost=total,
            ts=ts(at),
        )

    return [
        CallStarted(
            call_id=cid,
            direction="outbound",
            caller="+15557654321",
            callee="+15551234567",
            agent="receptionist",
            ts=ts(0),
        ),
        CallAnswered(call_id=cid, ts=ts(6)),
        AmdResult(call_id=cid, result="human", detection_ms=900.0, ts=ts(7)),
        Transcript(
            call_id=cid, role="agent", text="Hello, Example Dental, how can I help?", ts=ts(7)
        ),
        metrics(1, 540.0, 0.004, 0.011, 8),
        Transcript(
            call_id=cid,
            role="caller",
            text="Hi, I'd like to book a check-up for Friday morning.",
            ts=ts(15),
        ),
        ToolCalled(
            call_id=cid,
            tool_call_id="t1",
            name="book_appointment",
            arguments={"day": "friday"},
            ts=ts(16),
        ),
        ToolResult(
            call_id=cid,
            tool_call_id="t1",
            name="book_appointment",
            result={"slot": "09:30"},
            duration_ms=180.0,
            ts=ts(16),
        ),
        Transcript(
            call_id=cid,
            role="agent",
            text="I have nine thirty on Friday, would that",
            interrupted=True,
            ts=ts(17),
        ),
        BargeIn(call_id=cid, heard_ms=1400.0, detect_to_clear_ms=70.0, ts=ts(18)),
        metrics(2, 610.0, 0.006, 0.024, 18),
        Transcript(call_id=cid, role="caller", text="Yes, nine thirty is perfect.", ts=ts(20)),
        Transcript(
            call_id=cid,
            role="agent",
            text="Booked. Press 1 to get a text reminder.",
            ts=ts(21),
        ),
        metrics(3, 380.0, 0.004, 0.031, 21),
        Dtmf(call_id=cid, digit="1", ts=ts(25)),
        Transcript(call_id=cid, role="agent", text="Done, you'll get a text.", ts=ts(26)),
        metrics(4, 450.0, 0.003, 0.037, 26),
    ]


# Rows as the store's calls index holds them (``select * from calls``): the total
# cost is ``cost_total``, statuses are the stored ones (Twilio's "no-answer").
HISTORY: list[dict[str, Any]] = [
    {
        "call_id": f"c-{n:04x}",
        "direction": direction,
        "caller": caller,
        "callee": callee,
        "agent": agent,
        "status": status,
        "started_at": _at(600 + n * 1800).isoformat(),
        "duration_s": duration,
        "cost_total": cost,
        "transcript": [],
    }
    for n, (direction, caller, callee, agent, status, duration, cost) in enumerate(
        [
            ("inbound", "+15559870001", "+15557654321", "receptionist", "completed", 212.0, 0.061),
            ("outbound", "+15557654321", "+15551112222", "support", "no-answer", 0.0, 0.0),
            ("inbound", "+33612345678", "+15557654321", "support", "completed", 95.5, 0.027),
            ("outbound", "+15557654321", "+15553334444", "receptionist", "transferred", 61.0, 0.02),
            ("inbound", "+15559870002", "+15557654321", "line_test", "failed", 3.2, 0.001),
            ("inbound", "+15559870003", "+15557654321", "receptionist", "completed", 340.9, 0.094),
        ]
    )
]


class RecordedClient(PatterClient):
    def __init__(self) -> None:
        super().__init__(SOCKET)

    async def status(self) -> m.Status:
        return m.Status(
            version="0.1.0",
            pid=4242,
            uptime_s=3 * 3600 + 25 * 60 + 7,
            live_calls=len(LIVE),
            accepting=True,
            config_path="/etc/patter/patterd.toml",
            socket=str(SOCKET),
            event_position=len(_events()),
            carrier="twilio",
            public_host="patter.example.com",
        )

    async def live_calls(self) -> list[LiveCall]:
        return list(LIVE)

    async def calls(self, limit: int = 50, offset: int = 0, **filters: Any) -> m.CallPage:
        rows = [r for r in HISTORY if not filters.get("status") or r["status"] == filters["status"]]
        page = rows[offset : offset + limit]
        more = offset + limit if len(rows) > offset + limit else None
        return m.CallPage(calls=page, limit=limit, offset=offset, next_offset=more)

    async def call(self, call_id: str) -> m.CallDetail:
        row = next((r for r in HISTORY if r["call_id"] == call_id), None)
        if row is not None:
            return m.CallDetail(call=row, live=False)
        live = next(c for c in LIVE if c.call_id == call_id)
        return m.CallDetail(call=live.model_dump(mode="json"), live=True)

    async def totals(self, **filters: Any) -> m.DayTotals:
        return m.DayTotals(days=[{"day": "2025-03-14", "calls": 23, "minutes": 61.4, "cost": 1.87}])

    async def credentials(self) -> list[m.CredentialName]:
        return [
            m.CredentialName(name="OPENAI_API_KEY", source="keyring"),
            m.CredentialName(name="TWILIO_AUTH_TOKEN", source="credentials_directory"),
            m.CredentialName(name="DEEPGRAM_API_KEY", source="env"),
        ]

    async def events(
        self,
        call_id: str | None = None,
        since: int | None = None,
        *,
        reconnect_for_s: float = 30.0,
    ) -> AsyncIterator[StreamItem]:
        for pos, event in enumerate(_events(), start=1):
            yield StreamItem(pos=pos, event=event)
        await asyncio.Event().wait()  # a quiet, open stream until the app exits


def recorded_app() -> PatterApp:
    return PatterApp(RecordedClient(), clock=lambda: NOW)


# What each snapshot/screenshot shows: drive the recorded app to that screen.


async def _ready(pilot: Pilot[None]) -> None:
    app = pilot.app
    assert isinstance(app, PatterApp)
    await wait_for(pilot, lambda: app.connected and len(app.live) == 2, "recorded data")
    await wait_for(pilot, lambda: len(app.calls.get("c-7f3a").latencies) == 4, "all events")


async def calls(pilot: Pilot[None]) -> None:
    await _ready(pilot)
    history = pilot.app.screen.query_one("#history", DataTable)
    await wait_for(pilot, lambda: history.row_count == len(HISTORY), "history")
    await pilot.pause()


async def call(pilot: Pilot[None]) -> None:
    await _ready(pilot)
    pilot.app.screen.query_one("#live", DataTable).focus()
    await pilot.press("enter")
    view = pilot.app.screen.query_one(TranscriptView)
    await wait_for(pilot, lambda: len(view.lines) > 10, "transcript")
    await pilot.pause()


async def place_call(pilot: Pilot[None]) -> None:
    await _ready(pilot)
    await pilot.press("p")
    await pilot.press(*"555123", "enter")
    pilot.app.screen.query_one("#agent", Input).value = "receptionist"
    await pilot.pause()


async def credentials(pilot: Pilot[None]) -> None:
    await _ready(pilot)
    await pilot.press("k")
    table = pilot.app.screen.query_one("#creds", DataTable)
    await wait_for(pilot, lambda: table.row_count == 3, "credentials")
    await pilot.pause()


async def status(pilot: Pilot[None]) -> None:
    await _ready(pilot)
    await pilot.press("s")
    body = pilot.app.screen.query_one("#status-body", Static)
    await wait_for(pilot, lambda: "calls today" in str(body.render()), "status")
    await pilot.pause()


SCREENS: dict[str, Callable[[Pilot[None]], Awaitable[None]]] = {
    "calls": calls,
    "call": call,
    "place_call": place_call,
    "credentials": credentials,
    "status": status,
}
