"""Status: the daemon's version, uptime, carrier and public host, and today's calls and spend."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from patter_tui import format as fmt
from patter_tui.errors import CLIENT_ERRORS, first_line
from patter_tui.messages import CallUpdated, ConnectionChanged
from patter_tui.widgets.connection import ConnectionBar
from patterd.client import m

if TYPE_CHECKING:
    from patter_tui.app import PatterApp

REFRESH_S = 5.0


def status_rows(status: m.Status, today: dict[str, Any] | None) -> list[tuple[str, str]]:
    day = today or {}
    minutes = day.get("minutes")
    return [
        ("version", status.version),
        ("uptime", fmt.duration(status.uptime_s)),
        ("pid", str(status.pid)),
        ("accepting calls", "yes" if status.accepting else "no (draining)"),
        ("carrier", status.carrier or "–"),
        ("public host", status.public_host or "–"),
        ("live calls", fmt.live_of(status.live_calls, status.max_calls)),
        ("calls today", str(day.get("calls", 0))),
        ("minutes today", "–" if minutes is None else f"{float(minutes):.1f}"),
        ("cost today", fmt.cost(float(day.get("cost", 0.0)))),
        ("config", status.config_path),
        ("socket", status.socket),
    ]


class StatusScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "Reload")]

    @property
    def patter(self) -> PatterApp:
        from patter_tui.app import PatterApp

        assert isinstance(self.app, PatterApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBar(id="connection")
        yield Static(id="status-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "status"
        self.load()
        self.set_interval(REFRESH_S, self.load)

    def on_screen_resume(self) -> None:
        self.load()

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        self.load()

    def on_call_updated(self, message: CallUpdated) -> None:
        if message.event.type in ("call.started", "call.ended"):
            self.load()

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, group="status")
    async def load(self) -> None:
        body = self.query_one("#status-body", Static)
        midnight = datetime.combine(self.patter.clock().astimezone(UTC).date(), time(), UTC)
        try:
            status = await self.patter.client.status()
            days = (await self.patter.client.totals(since=midnight.isoformat())).days
        except CLIENT_ERRORS as exc:
            body.update(f"patterd is unreachable: {first_line(self.patter.problem(exc))}")
            return
        today = next((d for d in days if str(d.get("day")) == midnight.date().isoformat()), None)
        rows = status_rows(status, today)
        width = max(len(k) for k, _ in rows)
        body.update("\n".join(f"{k.rjust(width)}  {v}" for k, v in rows))
