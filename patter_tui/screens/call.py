"""One call: its transcript as it happens, per-turn latency and cost, and call control."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Sparkline, Static

from patter_tui import format as fmt
from patter_tui.errors import CLIENT_ERRORS, first_line
from patter_tui.messages import CallUpdated, LiveChanged
from patter_tui.screens.prompt import PromptScreen
from patter_tui.state import CallState, Line, LineKind
from patter_tui.widgets.connection import ConnectionBar
from patter_tui.widgets.transcript import TranscriptView
from patterd.client import m

if TYPE_CHECKING:
    from patter_tui.app import PatterApp


def stored_lines(row: dict[str, Any]) -> list[Line]:
    """Transcript lines of a call from the store (when no live events were seen)."""
    out: list[Line] = []
    for item in row.get("transcript") or []:
        if isinstance(item, dict) and item.get("role") in ("caller", "agent"):
            role: LineKind = "caller" if item["role"] == "caller" else "agent"
            out.append(Line(role, str(item.get("text", "")), cut=bool(item.get("interrupted"))))
    return out


def stored_cost(row: dict[str, Any]) -> float | None:
    """A stored call's total: its ``cost`` breakdown's ``total``, else its ``cost_total``."""
    parts = row.get("cost")
    total = parts.get("total") if isinstance(parts, dict) else None
    if not isinstance(total, int | float):
        total = row.get("cost_total")
    return float(total) if isinstance(total, int | float) else None


class CallScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("h", "hangup", "Hang up"),
        Binding("t", "transfer", "Transfer"),
        Binding("d", "dtmf", "DTMF"),
    ]

    def __init__(self, call_id: str) -> None:
        super().__init__()
        self.call_id = call_id

    @property
    def patter(self) -> PatterApp:
        from patter_tui.app import PatterApp

        assert isinstance(self.app, PatterApp)
        return self.app

    @property
    def call(self) -> CallState:
        return self.patter.calls.get(self.call_id)

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar(id="connection")
        yield Static(id="summary")
        yield TranscriptView(id="transcript")
        with Horizontal(id="latency-row"):
            yield Static("latency", id="latency-label")
            yield Sparkline([], id="latency")
            yield Static(id="turn-info")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = self.call_id
        lines = self.call.lines
        if lines:
            self.query_one(TranscriptView).add(lines)
        else:
            self.load_stored()
        self._show_figures()
        self.set_interval(1.0, self._show_figures)
        self.query_one(TranscriptView).focus()

    @work(exclusive=True, group="stored")
    async def load_stored(self) -> None:
        view = self.query_one(TranscriptView)
        try:
            detail = await self.patter.client.call(self.call_id)
        except CLIENT_ERRORS as exc:
            view.add([Line("error", first_line(self.patter.problem(exc)))])
            return
        row = detail.call
        call = self.call
        call.direction = call.direction or str(row.get("direction", ""))
        call.number = call.number or fmt.other_party(
            call.direction, str(row.get("caller", "")), str(row.get("callee", ""))
        )
        call.agent = call.agent or str(row.get("agent", ""))
        if not detail.live:
            call.state = str(row.get("status", call.state))
            call.duration_s = row.get("duration_s")
        if call.total_cost is None and not detail.live:
            call.total_cost = stored_cost(row)
        if not call.lines:
            self.query_one(TranscriptView).add(stored_lines(row))
        self._show_figures()

    def _show_figures(self) -> None:
        call = self.call
        live = {c.call_id: c for c in self.patter.live}
        if call.call_id in live:
            started = live[call.call_id].started_at
            elapsed: float | None = (self.patter.clock() - started).total_seconds()
            state = live[call.call_id].state
        else:
            elapsed, state = call.duration_s, call.state
        parts = [
            call.number or "…",
            fmt.arrow(call.direction),
            call.agent or "–",
            state,
            fmt.duration(elapsed),
            fmt.cost(call.total_cost),
        ]
        self.query_one("#summary", Static).update(" · ".join(parts))
        self.query_one("#latency", Sparkline).data = call.latencies[-60:]
        last = call.last_latency
        turns = len(call.latencies)
        self.query_one("#turn-info", Static).update(
            f"last {fmt.latency(last)} · {turns} turn{'s' if turns != 1 else ''}"
        )

    def on_call_updated(self, message: CallUpdated) -> None:
        if message.event.call_id != self.call_id:
            return
        self.query_one(TranscriptView).add(message.lines)
        self._show_figures()

    def on_live_changed(self, message: LiveChanged) -> None:
        self._show_figures()

    @work(group="control")
    async def action_hangup(self) -> None:
        try:
            await self.patter.client.hangup(self.call_id)
        except CLIENT_ERRORS as exc:
            self.notify(self.patter.problem(exc), title="Hang up failed", severity="error")
            return
        self.notify(f"hung up {self.call_id}")

    @work(group="control")
    async def action_transfer(self) -> None:
        to = await self.app.push_screen_wait(
            PromptScreen(
                "Transfer to", "+15551234567 or sip:…", m.TRANSFER_PATTERN, "E.164 or sip: URI"
            )
        )
        if not to:
            return
        try:
            await self.patter.client.transfer(self.call_id, to)
        except CLIENT_ERRORS as exc:
            self.notify(self.patter.problem(exc), title="Transfer failed", severity="error")
            return
        self.notify(f"transferred to {to}")

    @work(group="control")
    async def action_dtmf(self) -> None:
        digits = await self.app.push_screen_wait(
            PromptScreen("Send DTMF", "digits 0-9 * # A-D, w = pause", m.DTMF_PATTERN, "0-9*#A-Dw")
        )
        if not digits:
            return
        try:
            await self.patter.client.send_dtmf(self.call_id, digits)
        except CLIENT_ERRORS as exc:
            self.notify(self.patter.problem(exc), title="DTMF failed", severity="error")
