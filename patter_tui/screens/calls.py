"""Calls: live calls on top, the store's history below (paged, filtered by text, day, status)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.validation import Regex
from textual.widgets import DataTable, Footer, Header, Input, Label, Select

from patter_tui import format as fmt
from patter_tui.errors import CLIENT_ERRORS, first_line
from patter_tui.messages import CallUpdated, ConnectionChanged, LiveChanged
from patter_tui.widgets.connection import ConnectionBar
from patter_tui.widgets.live_calls import LiveCallsTable

if TYPE_CHECKING:
    from patter_tui.app import PatterApp

PAGE_SIZE = 50
LIVE_STATUS = "live"
# (label, stored value): the ``status`` values the store's calls index really holds
# (labels fit the 20-column list). "live" until call.ended; then the session's end
# status (its reason, except that hangup, agent_hangup and voicemail count as
# completed), the store's "interrupted" for calls a dead daemon left live, "busy" for
# refused calls, "failed" for calls that could not be set up, and, for calls no media
# stream ever ran for, the carrier's own word: Twilio's CallStatus (no-answer,
# canceled, ...) or Telnyx's hangup_cause (no_answer, user_busy, call_rejected, ...).
STATUSES: tuple[tuple[str, str], ...] = (
    ("live (ongoing)", LIVE_STATUS),
    ("completed", "completed"),
    ("transferred", "transferred"),
    ("interrupted", "interrupted"),
    ("engine error", "engine_error"),
    ("error", "error"),
    ("machine (AMD)", "machine"),
    ("daemon shutdown", "shutdown"),
    ("failed", "failed"),
    ("busy", "busy"),
    ("Twilio no answer", "no-answer"),
    ("Twilio canceled", "canceled"),
    ("Telnyx no answer", "no_answer"),
    ("Telnyx busy", "user_busy"),
    ("Telnyx rejected", "call_rejected"),
)
DAY_PATTERN = r"^(\d{4}-\d{2}-\d{2})?$"


def history_filters(text: str, day: str, status: str | None) -> dict[str, Any]:
    """Server-side filters for the history query (a ``+number`` is matched by the store)."""
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = status
    if text.startswith("+"):
        filters["number"] = text
    if day:
        start = datetime.combine(datetime.fromisoformat(day).date(), time(), tzinfo=UTC)
        filters["since"] = start.isoformat()
        filters["until"] = (start + timedelta(days=1)).isoformat()
    return filters


def history_cost(row: dict[str, Any]) -> float | None:
    """A history row's total cost (the index's ``cost_total``); none yet while it is live."""
    value = row.get("cost_total")
    if row.get("status") == LIVE_STATUS or not isinstance(value, int | float):
        return None
    return float(value)


def matches(row: dict[str, Any], text: str) -> bool:
    """Free-text match on the fields a person remembers a call by."""
    if not text or text.startswith("+"):
        return True
    fields = ("call_id", "caller", "callee", "agent", "status", "direction")
    return any(text.lower() in str(row.get(f, "")).lower() for f in fields)


class CallsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("left_square_bracket", "page(-1)", "Prev", show=False),
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "leave_filter", "Back", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.page_offset = 0
        self.next_offset: int | None = None

    @property
    def patter(self) -> PatterApp:
        from patter_tui.app import PatterApp

        assert isinstance(self.app, PatterApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar(id="connection")
        yield Label("Live calls", classes="section")
        yield LiveCallsTable(id="live")
        yield Label("History", classes="section", id="history-title")
        with Horizontal(id="filters"):
            yield Input(placeholder="search text or +number", id="text", compact=True)
            yield Input(
                placeholder="YYYY-MM-DD",
                id="day",
                compact=True,
                validators=[Regex(DAY_PATTERN, failure_description="day must be YYYY-MM-DD")],
            )
            yield Select(STATUSES, prompt="any status", id="status", compact=True)
        yield DataTable[str](id="history", cursor_type="row", zebra_stripes=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        table = self.query_one("#history", DataTable)
        for name in ("started", "number", "dir", "agent", "status", "duration", "cost"):
            table.add_column(name, key=name)
        self.show_live()
        self.load_history()
        self.set_interval(1.0, self._tick)
        self.query_one("#live").focus()

    def on_screen_resume(self) -> None:
        self.show_live()
        self.load_history()

    def show_live(self) -> None:
        app = self.patter
        self.query_one(LiveCallsTable).show(app.live, app.calls, app.clock())

    def _tick(self) -> None:
        self.query_one(LiveCallsTable).tick(self.patter.live, self.patter.clock())

    def on_live_changed(self, message: LiveChanged) -> None:
        self.show_live()

    def on_call_updated(self, message: CallUpdated) -> None:
        self.show_live()
        if message.event.type == "call.ended":
            self.load_history()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        self.show_live()
        if message.connected:
            self.load_history()

    @work(exclusive=True, group="history")
    async def load_history(self) -> None:
        text = self.query_one("#text", Input).value.strip()
        day_input = self.query_one("#day", Input)
        day = day_input.value.strip()
        if not day_input.is_valid:
            return
        select = self.query_one("#status", Select)
        status = None if select.is_blank() else str(select.value)
        title = self.query_one("#history-title", Label)
        # Taken before the await: the screen may be torn down while the daemon
        # answers, and a query then would fail the worker.
        table = self.query_one("#history", DataTable)
        try:
            page = await self.patter.client.calls(
                PAGE_SIZE, self.page_offset, **history_filters(text, day, status)
            )
        except CLIENT_ERRORS as exc:
            title.update(f"History — unavailable: {first_line(self.patter.problem(exc))}")
            return
        table.clear()
        rows = [r for r in page.calls if matches(r, text)]
        for row in rows:
            table.add_row(
                fmt.when(row.get("started_at")),
                fmt.other_party(
                    str(row.get("direction", "")),
                    str(row.get("caller", "")),
                    str(row.get("callee", "")),
                ),
                fmt.arrow(str(row.get("direction", ""))),
                str(row.get("agent", "")),
                str(row.get("status", "")),
                fmt.duration(row.get("duration_s")),
                fmt.cost(history_cost(row)),
                key=str(row.get("call_id")),
            )
        self.next_offset = page.next_offset
        first = self.page_offset + 1 if rows else self.page_offset
        more = " · ] next page" if page.next_offset is not None else ""
        back = " · [ previous" if self.page_offset else ""
        title.update(f"History — {first}–{self.page_offset + len(page.calls)}{more}{back}")

    @on(Input.Submitted, "#text, #day")
    @on(Select.Changed, "#status")
    def _filter_changed(self) -> None:
        self.page_offset = 0
        self.load_history()

    @on(DataTable.RowSelected)
    def _open_row(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.patter.open_call(event.row_key.value)

    def action_open(self) -> None:
        table = self.focused
        if isinstance(table, DataTable) and table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
            if key.value is not None:
                self.patter.open_call(key.value)

    def action_filter(self) -> None:
        self.query_one("#text", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one("#history").focus()

    def action_page(self, step: int) -> None:
        if step > 0 and self.next_offset is None:
            return
        self.page_offset = max(0, self.page_offset + step * PAGE_SIZE)
        self.load_history()

    def action_reload(self) -> None:
        self.patter.refresh_live()
        self.load_history()
