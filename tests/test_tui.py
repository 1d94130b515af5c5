"""patter-tui driven by Textual's Pilot against a real patterd subprocess (test runtime)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, Select, Sparkline, Static
from textual.worker import WorkerState

from patter_core.testing import SimulatedTwilio, tone_mulaw
from patter_core.testing.daemon import daemon_config, free_port
from patter_tui import format as fmt
from patter_tui.app import PatterApp
from patter_tui.screens.call import CallScreen
from patter_tui.screens.calls import STATUSES, CallsScreen
from patter_tui.screens.credentials import CredentialsScreen
from patter_tui.screens.place_call import PlaceCallScreen
from patter_tui.screens.status import StatusScreen
from patter_tui.widgets.transcript import TranscriptView
from patterd.client import PatterClient
from tests.support.daemon_calls import history, is_live, no_live, sdk_daemon, until
from tests.support.daemon_proc import DaemonProcess, write_config
from tests.support.fixtures import short_tmp_dir
from tests.support.runtime import FINAL_LINE, SCRIPTED_NUMBER
from tests.support.tui import column, row_keys, wait_for

SIZE = (80, 24)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


@pytest.fixture
def daemon(short_tmp: Path) -> Iterator[DaemonProcess]:
    cfg = write_config(
        short_tmp, '[agents.echo]\nengine = "echo"\n[agents.sales]\nengine = "echo"\n'
    )
    with DaemonProcess(short_tmp, cfg) as d:
        yield d


@pytest.fixture
async def client(daemon: DaemonProcess) -> AsyncIterator[PatterClient]:
    async with PatterClient(daemon.socket_path) as c:
        yield c


def app_for(daemon: DaemonProcess) -> PatterApp:
    return PatterApp(PatterClient(daemon.socket_path))


async def test_call_appears_live_and_transcript_streams_and_hangup(
    daemon: DaemonProcess, client: PatterClient
) -> None:
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        assert "patterd" in str(app.connection_text)
        screen = app.screen
        assert isinstance(screen, CallsScreen)
        live = screen.query_one("#live", DataTable)
        assert live.row_count == 0

        call_id = await client.place_call(SCRIPTED_NUMBER, "sales", "Hi, it's the bistro.")
        await wait_for(pilot, lambda: call_id in row_keys(live), "the call in the live table")
        assert column(live, "number") == [SCRIPTED_NUMBER]
        assert column(live, "agent") == ["sales"]
        assert column(live, "dir") == ["out"]
        assert column(live, "state") == ["in-progress"]

        await pilot.press("enter")
        assert isinstance(app.screen, CallScreen)
        view = app.screen.query_one(TranscriptView)
        await wait_for(pilot, lambda: any(FINAL_LINE in p for p in view.plain), "final line")
        text = "\n".join(view.plain)
        assert "agent  Hi, it's the bistro." in text
        assert "caller  I'd like a table for Friday." in text
        assert "tool  book_table" in text and '{"ok": true}' in text
        assert "agent  Booked for seven, and ✂ cut" in text
        assert "dtmf  5" in text
        assert "amd  human" in text
        assert "turn 2 · 610 ms · $0.004" in text
        # the unknown "future.event" sat between those lines: skipped, nothing crashed
        spark = app.screen.query_one("#latency", Sparkline)
        await wait_for(pilot, lambda: list(spark.data or []) == [420.0, 610.0, 380.0], "3 turns")
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "$0.019" in summary and "· sales ·" in summary

        await pilot.press("h")
        await wait_for(pilot, lambda: any("ended: hangup" in p for p in view.plain), "ended")
        assert await client.live_calls() == []
        await pilot.press("escape")
        assert isinstance(app.screen, CallsScreen)
        await wait_for(pilot, lambda: live.row_count == 0, "live table emptied")
        history = app.screen.query_one("#history", DataTable)
        await wait_for(pilot, lambda: call_id in row_keys(history), "call in history")
        assert column(history, "status") == ["completed"]


async def test_send_dtmf_and_transfer_from_call_screen(
    daemon: DaemonProcess, client: PatterClient
) -> None:
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        call_id = await client.place_call("+15551230000")
        await wait_for(pilot, lambda: bool(app.live), "live call")
        app.open_call(call_id)
        await pilot.pause()
        view = app.screen.query_one(TranscriptView)
        await pilot.press("d")
        await pilot.press(*"12x")
        await pilot.press("enter")
        assert "0-9*#A-Dw" in str(app.screen.query_one("#prompt-error", Label).render())
        await pilot.press("backspace", "enter")
        await wait_for(pilot, lambda: sum("dtmf  " in p for p in view.plain) == 2, "2 digits")
        await pilot.press("t")
        await pilot.press(*"+15559990000", "enter")
        await wait_for(pilot, lambda: any("transferred" in p for p in view.plain), "transfer")
        assert await client.live_calls() == []


async def test_place_call_form_validates_and_shows_daemon_errors(
    daemon: DaemonProcess, client: PatterClient
) -> None:
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        await pilot.press("p")
        form = app.screen
        assert isinstance(form, PlaceCallScreen)
        await pilot.press(*"5551234", "enter")
        assert "E.164" in str(form.query_one("#to-error", Label).render())
        assert await client.live_calls() == []

        form.query_one("#to", Input).value = "+15551234567"
        form.query_one("#agent", Input).value = "nobody"
        await pilot.click("#call")
        error = form.query_one("#form-error", Label)
        await wait_for(pilot, lambda: "unknown agent" in str(error.render()), "daemon error")
        assert str(form.query_one("#to-error", Label).render()) == ""

        form.query_one("#agent", Input).value = "sales"
        form.query_one("#first", Input).value = "Calling about your order."
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, CallScreen), "call screen")
        view = app.screen.query_one(TranscriptView)
        await wait_for(pilot, lambda: any("your order" in p for p in view.plain), "first message")
        (call,) = await client.live_calls()
        assert (call.callee, call.agent) == ("+15551234567", "sales")


async def test_credential_set_and_removed_through_the_api(
    daemon: DaemonProcess, client: PatterClient
) -> None:
    app = app_for(daemon)
    secret = "sk-test-not-shown-0123456789"
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        await pilot.press("k")
        screen = app.screen
        assert isinstance(screen, CredentialsScreen)
        value = screen.query_one("#value", Input)
        assert value.password
        screen.query_one("#name", Input).value = "bad name"
        value.value = secret
        await pilot.click("#set")
        error = screen.query_one("#cred-error", Label)
        assert "UPPER_CASE" in str(error.render())

        screen.query_one("#name", Input).value = "OPENAI_API_KEY"
        await pilot.click("#set")
        table = screen.query_one("#creds", DataTable)
        await wait_for(pilot, lambda: "OPENAI_API_KEY" in row_keys(table), "credential listed")
        assert column(table, "source") == ["keyring"]
        assert value.value == ""
        assert secret not in "\n".join(str(w.render()) for w in screen.query(Static))
        keyring_file = Path(daemon.env["PATTER_TEST_KEYRING_FILE"])
        stored = json.loads(await asyncio.to_thread(keyring_file.read_text))
        assert stored["patter"]["OPENAI_API_KEY"] == secret
        assert [c.name for c in await client.credentials()] == ["OPENAI_API_KEY"]

        await pilot.click("#remove")
        await wait_for(pilot, lambda: table.row_count == 0, "credential removed")
        assert await client.credentials() == []


async def test_status_screen_shows_daemon_and_today(
    daemon: DaemonProcess, client: PatterClient
) -> None:
    call_id = await client.place_call("+15551230000")
    await client.hangup(call_id)
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        await pilot.press("s")
        assert isinstance(app.screen, StatusScreen)
        body = app.screen.query_one("#status-body", Static)
        await wait_for(pilot, lambda: "calls today" in str(body.render()), "status")
        text = str(body.render())
        assert "carrier  twilio" in text
        assert "calls today  1" in text
        assert "cost today  $0.012" in text
        assert f"socket  {daemon.socket_path}" in text


async def test_reconnects_after_daemon_restart(daemon: DaemonProcess) -> None:
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        first_pid = app.feed.pid
        rc, _ = await asyncio.to_thread(daemon.stop)
        assert rc == 0
        await wait_for(pilot, lambda: not app.connected, "disconnected state")
        assert "disconnected — retrying" in str(app.connection_text)
        bar = app.screen.query_one("#connection")
        assert bar.has_class("-down")

        await asyncio.to_thread(daemon.start)
        await wait_for(pilot, lambda: app.connected, "reconnection")
        assert app.feed.pid != first_pid
        assert not bar.has_class("-down")
        async with PatterClient(daemon.socket_path) as c:
            call_id = await c.place_call("+15551230000")
        live = app.screen.query_one("#live", DataTable)
        await wait_for(pilot, lambda: call_id in row_keys(live), "call after restart")
        await wait_for(pilot, lambda: app.calls.get(call_id).lines != [], "events after restart")


async def test_no_color_is_respected(
    daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = app_for(daemon)
    assert app.no_color
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")


async def test_command_palette_opens_screens_and_live_calls(
    daemon: DaemonProcess, client: PatterClient
) -> None:
    call_id = await client.place_call("+15551230000")
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected and bool(app.live), "live call")
        await pilot.press("ctrl+p")
        await pilot.press(*"Status")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, StatusScreen), "status screen")
        await pilot.press("ctrl+p")
        await pilot.press(*"Open call")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CallScreen), "call screen")
        assert isinstance(app.screen, CallScreen) and app.screen.call_id == call_id


async def test_history_filters_by_status_and_text(
    daemon: DaemonProcess, client: PatterClient
) -> None:
    kept = await client.place_call("+15551230001", "sales")
    await client.hangup(kept)
    moved = await client.place_call("+15551230002")
    await client.transfer(moved, "+15559990000")
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        history = app.screen.query_one("#history", DataTable)
        await wait_for(pilot, lambda: len(row_keys(history)) == 2, "both calls")
        await pilot.press("slash", *"sales", "enter")
        await wait_for(pilot, lambda: row_keys(history) == [kept], "text filter")
        app.screen.query_one("#text", Input).value = ""
        app.screen.query_one("#status", Select).value = "transferred"
        await wait_for(pilot, lambda: row_keys(history) == [moved], "status filter")
        app.screen.query_one("#status", Select).clear()
        day = app.screen.query_one("#day", Input)
        day.value = "2000-01-01"
        day.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: row_keys(history) == [], "nothing on another day")
        day.value = app.clock().date().isoformat()
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(row_keys(history)) == 2, "both calls today")


def test_the_status_screen_shows_live_calls_against_max_calls() -> None:
    from patter_tui.screens.status import status_rows
    from patterd.client import m

    base = dict(
        version="0.1.0", pid=1, uptime_s=5.0, live_calls=3, accepting=True,
        config_path="/c.toml", socket="/s.sock", event_position=0,
    )  # fmt: skip
    rows = dict(status_rows(m.Status(**base, max_calls=150), None))
    assert rows["live calls"] == "3 of 150 (max_calls)"
    assert dict(status_rows(m.Status(**base), None))["live calls"] == "3"


@pytest.fixture
async def sdk_daemon_twilio(
    short_tmp: Path,
) -> AsyncIterator[tuple[DaemonProcess, SimulatedTwilio]]:
    """patterd with the real SDK runtime and store, its carrier a simulated Twilio."""
    port = free_port()
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        config = daemon_config(sim, port=port, history=short_tmp / "history")
        proc = sdk_daemon(short_tmp, config, {"TWILIO_AUTH_TOKEN": sim.auth_token})
        # The daemon calls the simulated Twilio in this process while starting: don't block it.
        await asyncio.to_thread(proc.start)
        try:
            yield proc, sim
        finally:
            proc.__exit__(None, None, None)


async def _answered_call(sim: SimulatedTwilio, client: PatterClient) -> dict[str, Any]:
    """An inbound call that talks, then hangs up: its row in the store's history."""
    call = await sim.inbound_call(from_="+15550007777")
    await until(client.live_calls)
    tone = tone_mulaw(440, 0.3)
    call.say(tone)
    await call.wait_heard(len(tone))
    await call.hangup()
    await until(lambda: no_live(client))
    (row,) = await until(lambda: history(client, 1))
    return row


async def _stored(client: PatterClient, n: int) -> bool:
    return len((await client.calls()).calls) >= n


async def test_history_and_a_stored_call_show_the_stored_cost(
    sdk_daemon_twilio: tuple[DaemonProcess, SimulatedTwilio],
) -> None:
    proc, sim = sdk_daemon_twilio
    async with PatterClient(proc.socket_path) as client:
        row = await _answered_call(sim, client)
    assert isinstance(row["cost_total"], float) and row["cost_total"] > 0
    cost = fmt.cost(row["cost_total"])
    # A new daemon process: its events log starts empty, so the console knows the call
    # only from the store, and the Call screen reads the stored detail.
    rc, err = await asyncio.to_thread(proc.stop)
    assert rc == 0, err
    await asyncio.to_thread(proc.start)
    app = app_for(proc)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.connected, "connection")
        history_table = app.screen.query_one("#history", DataTable)
        call_id = row["call_id"]
        await wait_for(pilot, lambda: row_keys(history_table) == [call_id], "call in history")
        assert column(history_table, "cost") == [cost]
        history_table.focus()
        await pilot.press("enter")
        assert isinstance(app.screen, CallScreen)
        summary = app.screen.query_one("#summary", Static)
        await wait_for(pilot, lambda: cost in str(summary.render()), "stored cost in summary")
        assert "completed" in str(summary.render())


async def test_history_status_list_offers_the_statuses_the_store_holds(
    sdk_daemon_twilio: tuple[DaemonProcess, SimulatedTwilio],
) -> None:
    proc, sim = sdk_daemon_twilio
    async with PatterClient(proc.socket_path) as client:
        done = (await _answered_call(sim, client))["call_id"]
        live = await client.place_call("+15550004444")
        await until(lambda: is_live(client, live))
        await until(lambda: _stored(client, 2))  # the store writes within a second
        app = app_for(proc)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: app.connected, "connection")
            history_table = app.screen.query_one("#history", DataTable)
            await wait_for(pilot, lambda: len(row_keys(history_table)) == 2, "both calls")
            # the live row has no stored total yet: no misleading $0.000
            assert str(history_table.get_cell(live, "cost")) == "–"
            status = app.screen.query_one("#status", Select)
            status.value = "live"
            await wait_for(pilot, lambda: row_keys(history_table) == [live], "live calls only")
            status.value = "completed"
            await wait_for(pilot, lambda: row_keys(history_table) == [done], "completed only")
            stored = {str(r["status"]) for r in (await client.calls()).calls}
            offered = {value for _, value in STATUSES}
            assert stored == {"live", "completed"} and stored <= offered
            assert "in-progress" not in offered


async def test_credentials_error_clears_when_the_daemon_comes_back(
    daemon: DaemonProcess,
) -> None:
    rc, _ = await asyncio.to_thread(daemon.stop)
    assert rc == 0
    app = app_for(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("k")
        screen = app.screen
        assert isinstance(screen, CredentialsScreen)
        error = screen.query_one("#cred-error", Label)
        await wait_for(pilot, lambda: "not running" in str(error.render()), "load error")

        await asyncio.to_thread(daemon.start)
        await wait_for(pilot, lambda: app.connected, "reconnection")
        await wait_for(pilot, lambda: str(error.render()) == "", "stale error cleared")
        # a problem with the form itself is not what a reload clears
        screen.query_one("#name", Input).value = "bad name"
        await pilot.click("#set")
        assert "UPPER_CASE" in str(error.render())
        await pilot.press("escape", "r")
        await pilot.pause(0.3)
        assert "UPPER_CASE" in str(error.render())


def _events_worker_running(app: PatterApp) -> bool:
    return any(w.name == "events" and w.state == WorkerState.RUNNING for w in app.workers)


async def _shows_unusable_socket(pilot: Pilot[None], expected: str) -> None:
    """Every screen that asks the daemon says ``expected``; the console keeps retrying."""
    app = pilot.app
    assert isinstance(app, PatterApp)
    await wait_for(pilot, lambda: expected in str(app.connection_text), "disconnected")
    assert str(app.connection_text).startswith("✕ disconnected — retrying")
    assert app.screen.query_one("#connection").has_class("-down")
    title = app.screen.query_one("#history-title", Label)
    await wait_for(pilot, lambda: expected in str(title.render()), "history error")
    await pilot.press("k")
    error = app.screen.query_one("#cred-error", Label)
    await wait_for(pilot, lambda: expected in str(error.render()), "credentials error")
    await pilot.press("s")
    body = app.screen.query_one("#status-body", Static)
    await wait_for(pilot, lambda: expected in str(body.render()), "status error")
    await pilot.press("p")
    await pilot.press(*"+15551234567", "enter")
    form_error = app.screen.query_one("#form-error", Label)
    await wait_for(pilot, lambda: expected in str(form_error.render()), "place call error")
    await pilot.press("escape", "c")
    await pilot.pause(1.0)  # several retry rounds
    assert app.is_running and not app.connected
    assert _events_worker_running(app)


@pytest.mark.skipif(os.geteuid() == 0, reason="root is not stopped by folder permissions")
async def test_socket_folder_without_permission_shows_why_and_keeps_retrying(
    short_tmp: Path,
) -> None:
    daemon = DaemonProcess(short_tmp, write_config(short_tmp))
    folder = daemon.socket_path.parent  # like another user's 0700 runtime dir
    folder.mkdir(mode=0o700)
    folder.chmod(0)
    app = PatterApp(PatterClient(daemon.socket_path))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await _shows_unusable_socket(pilot, "permission denied")
            folder.chmod(0o700)
            await asyncio.to_thread(daemon.start)
            await wait_for(pilot, lambda: app.connected, "connection once allowed")
            title = app.screen.query_one("#history-title", Label)
            await wait_for(pilot, lambda: "unavailable" not in str(title.render()), "history")
    finally:
        folder.chmod(0o700)
        daemon.__exit__(None, None, None)


async def test_unusable_socket_path_shows_why_and_keeps_retrying(tmp_path: Path) -> None:
    # Root passes any permission check, so make the path itself unusable: longer than
    # a Unix socket's address can hold (the client says so before touching it).
    socket_path = tmp_path / ("x" * 300) / "patterd.sock"
    app = PatterApp(PatterClient(socket_path))
    async with app.run_test(size=SIZE) as pilot:
        await _shows_unusable_socket(pilot, "too long for a Unix socket")
