"""The live calls table: one row per call in progress, durations ticking from the app's clock."""

from __future__ import annotations

from datetime import datetime

from textual.widgets import DataTable

from patter_tui import format as fmt
from patter_tui.state import CallRegistry
from patterd.client import LiveCall

COLUMNS = ("number", "dir", "agent", "duration", "state", "cost", "latency")


class LiveCallsTable(DataTable[str]):
    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.zebra_stripes = True
        for name in COLUMNS:
            self.add_column(name, key=name)

    def show(self, live: list[LiveCall], calls: CallRegistry, now: datetime) -> None:
        keep = self.cursor_row
        self.clear()
        for call in sorted(live, key=lambda c: c.started_at):
            state = calls.find(call.call_id)
            self.add_row(
                fmt.other_party(call.direction, call.caller, call.callee),
                fmt.arrow(call.direction),
                call.agent,
                fmt.duration((now - call.started_at).total_seconds()),
                call.state,
                fmt.cost(state.total_cost if state else None),
                fmt.latency(state.last_latency if state else None),
                key=call.call_id,
            )
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1))

    def tick(self, live: list[LiveCall], now: datetime) -> None:
        """Update only the duration cells (called every second)."""
        for call in live:
            if call.call_id in self.rows:
                value = fmt.duration((now - call.started_at).total_seconds())
                self.update_cell(call.call_id, "duration", value)
