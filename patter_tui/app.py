"""``patter-tui``: the Textual console for a running patterd (calls, credentials, status).

It talks to the daemon only through :mod:`patterd.client`; a background worker
follows the events stream and turns each event into a Textual message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.reactive import reactive

from patter_tui.errors import CLIENT_ERRORS, describe
from patter_tui.feed import EventFeed
from patter_tui.messages import (
    CallUpdated,
    Connected,
    ConnectionChanged,
    DaemonEvent,
    Disconnected,
    EventsMissed,
    LiveChanged,
)
from patter_tui.screens.call import CallScreen
from patter_tui.screens.calls import CallsScreen
from patter_tui.screens.credentials import CredentialsScreen
from patter_tui.screens.place_call import PlaceCallScreen
from patter_tui.screens.status import StatusScreen
from patter_tui.state import CallRegistry
from patterd.client import LiveCall, PatterClient
from patterd.paths import default_socket_path

LIVE_CHANGES = ("call.started", "call.answered", "call.ended")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class PatterCommands(Provider):
    """Command palette: go to a screen, place a call, open or hang up a live call."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        assert isinstance(app, PatterApp)
        items: list[tuple[str, str, Callable[[], object]]] = [
            ("Calls", "live calls and history", partial(app.switch_mode, "calls")),
            ("Place a call", "dial a number with an agent", app.action_place_call),
            ("Credentials", "set or remove keyring credentials", partial(app.switch_mode, "creds")),
            (
                "Status",
                "version, uptime, today's totals",
                partial(app.switch_mode, "status"),
            ),
        ]
        for call in app.live:
            number = call.callee if call.direction == "outbound" else call.caller
            items.append(
                (f"Open call {number} ({call.call_id})", "live transcript",
                 partial(app.open_call, call.call_id))
            )  # fmt: skip
            items.append(
                (f"Hang up {number} ({call.call_id})", "end this call now",
                 partial(app.hangup, call.call_id))
            )  # fmt: skip
        return items

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


class PatterApp(App[None]):
    CSS_PATH = "styles.tcss"
    TITLE = "Patter"
    MODES: ClassVar[dict[str, str | Callable[[], object]]] = {  # type: ignore[assignment]
        "calls": CallsScreen,
        "creds": CredentialsScreen,
        "status": StatusScreen,
    }
    DEFAULT_MODE = "calls"
    COMMANDS = App.COMMANDS | {PatterCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "switch_mode('calls')", "Calls"),
        Binding("p", "place_call", "Place"),
        Binding("k", "switch_mode('creds')", "Creds"),
        Binding("s", "switch_mode('status')", "Status"),
        Binding("q", "quit", "Quit"),
    ]

    connected: reactive[bool] = reactive(False)
    connection_text: reactive[str] = reactive("connecting to patterd…")

    def __init__(self, client: PatterClient, *, clock: Clock = utc_now) -> None:
        super().__init__()
        self.client = client
        self.clock = clock
        self.calls = CallRegistry()
        self.live: list[LiveCall] = []
        self.feed = EventFeed(client, self.post_message)

    def on_mount(self) -> None:
        self.run_worker(self.feed.run(), name="events", group="events", exclusive=True)

    async def on_unmount(self) -> None:
        await self.client.close()

    def _broadcast(self, make: Callable[[], object]) -> None:
        for screen in self.screen_stack:
            message = make()
            assert isinstance(message, (CallUpdated, ConnectionChanged, LiveChanged))
            screen.post_message(message)

    def on_connected(self, message: Connected) -> None:
        if message.restarted:
            self.calls.clear()
        self.connected = True
        status = message.status
        self.connection_text = f"● patterd {status.version} · {self.client.socket_path}"
        self.refresh_live()
        self._broadcast(lambda: ConnectionChanged(True))

    def on_disconnected(self, message: Disconnected) -> None:
        was_connected = self.connected
        self.connected = False
        self.connection_text = f"✕ disconnected — retrying ({message.reason})"
        if was_connected:
            self.live = []
            self._broadcast(lambda: ConnectionChanged(False))

    def on_events_missed(self, message: EventsMissed) -> None:
        self.notify(f"{message.missed} event(s) were missed; reloading", severity="warning")
        self.refresh_live()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        event = message.event
        lines = self.calls.apply(event)
        self._broadcast(lambda: CallUpdated(event, lines))
        if event.type in LIVE_CHANGES:
            self.refresh_live()

    @work(exclusive=True, group="live")
    async def refresh_live(self) -> None:
        try:
            self.live = await self.client.live_calls()
        except CLIENT_ERRORS:
            return
        self._broadcast(LiveChanged)

    def problem(self, exc: BaseException) -> str:
        """What went wrong talking to the daemon, for a label or a notification."""
        return describe(exc, self.client.socket_path)

    def open_call(self, call_id: str) -> None:
        self.push_screen(CallScreen(call_id))

    def action_place_call(self) -> None:
        self.push_screen(PlaceCallScreen())

    @work(group="control")
    async def hangup(self, call_id: str) -> None:
        try:
            await self.client.hangup(call_id)
        except CLIENT_ERRORS as exc:
            self.notify(self.problem(exc), title="Hang up failed", severity="error")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="patter-tui", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--socket",
        type=Path,
        default=None,
        help="patterd's control socket (default: as patterctl, $PATTERD_SOCKET or the runtime dir)",
    )
    args = parser.parse_args(argv)
    socket_path = args.socket or default_socket_path()
    PatterApp(PatterClient(socket_path)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
