"""The dashboard over a real Patter server and simulated Twilio: auth, JSON, exports, escaping."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from patter_core import EchoEngine, Patter
from patter_core.dashboard import auth as dash_auth
from patter_core.dashboard.auth import DashboardAuth, check_bind, host_of
from patter_core.dashboard.routes import Dashboard, csv_cell, render_call
from patter_core.events import CallEnded, CallStarted, Transcript
from patter_core.store import CallStore
from tests.twilio_harness import Rig, twilio_rig

TOKEN = "dash-Secret-0123456789"
HOSTILE = "<script>alert(1)</script> & \"quotes\" 'too'"


def base(rig: Rig) -> str:
    assert rig.phone.server is not None
    return f"http://127.0.0.1:{rig.phone.server.port}"


async def get(rig: Rig, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(base(rig) + path, headers=headers or {}, allow_redirects=False) as resp,
    ):
        return resp.status, await resp.text(), resp.headers


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := await check()):
            await asyncio.sleep(0.05)
        return value


async def a_call(rig: Rig, text: str = HOSTILE) -> str:
    """An inbound call with one transcript line, hung up; returns its call id."""
    call = await rig.sim.inbound_call(from_="+15550007777")
    started = await rig.next_event("call.started")
    await rig.next_event("call.answered")
    rig.phone.bus.publish(Transcript(call_id=started.call_id, role="caller", text=text))
    await call.hangup()
    await rig.next_event("call.ended")
    return started.call_id


async def test_open_dashboard_on_loopback_serves_json_and_warns(caplog):
    caplog.set_level(logging.WARNING)
    async with twilio_rig() as rig:
        status, body, _ = await get(rig, "/dashboard/api/calls")
        assert status == 200 and json.loads(body) == {"calls": []}
    assert "dashboard is open" in caplog.text


async def test_open_dashboard_refuses_requests_addressed_to_a_public_host():
    async with twilio_rig() as rig:
        status, _, _ = await get(rig, "/dashboard/api/calls", {"Host": "abc.trycloudflare.com"})
        assert status == 403


async def test_token_guards_every_route(caplog):
    caplog.set_level(logging.DEBUG)
    async with twilio_rig(serve_kwargs={"dashboard_token": TOKEN}) as rig:
        for path in ("/dashboard/api/calls", "/dashboard/api/calls.csv", "/dashboard/api/events"):
            status, _, _ = await get(rig, path)
            assert status == 401, path
            status, _, _ = await get(rig, path, {"Authorization": "Bearer wrong-token"})
            assert status == 401, path
        status, _, headers = await get(rig, "/dashboard")
        assert status == 303 and headers["Location"] == "/dashboard/login"
        status, _, _ = await get(rig, "/dashboard/static/app.js")
        assert status == 303
        status, body, headers = await get(
            rig, "/dashboard/api/calls", {"Authorization": f"Bearer {TOKEN}"}
        )
        assert status == 200 and json.loads(body) == {"calls": []}
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        status, _, _ = await get(rig, "/dashboard", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
    assert TOKEN not in caplog.text
    assert "dashboard is open" not in caplog.text


async def test_login_form_sets_a_strict_httponly_session_cookie():
    async with twilio_rig(serve_kwargs={"dashboard_token": TOKEN}) as rig:
        async with aiohttp.ClientSession() as http:
            url = base(rig) + "/dashboard/login"
            async with http.get(url) as resp:
                assert resp.status == 200 and 'type="password"' in await resp.text()
            async with http.post(url, data={"token": "nope"}, allow_redirects=False) as resp:
                assert resp.status == 401 and "Set-Cookie" not in resp.headers
            async with http.post(url, data={"token": TOKEN}, allow_redirects=False) as resp:
                assert resp.status == 303
                cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert TOKEN not in cookie
            sid = cookie.split(";", 1)[0]
        status, _, _ = await get(rig, "/dashboard/api/calls", {"Cookie": sid})
        assert status == 200
        status, _, _ = await get(rig, "/dashboard/api/calls", {"Cookie": "patter_dashboard=forged"})
        assert status == 401


async def test_token_is_compared_in_constant_time(monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = dash_auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(dash_auth.hmac, "compare_digest", spy)
    auth = DashboardAuth(TOKEN)
    assert auth.token_matches(TOKEN) and not auth.token_matches(TOKEN[:-1])
    assert calls == [(TOKEN.encode(), TOKEN.encode()), (TOKEN[:-1].encode(), TOKEN.encode())]


async def test_open_dashboard_on_a_public_bind_is_refused_at_serve():
    phone = Patter(bind_host="0.0.0.0", persist=False)
    with pytest.raises(ValueError, match="dashboard_allow_open"):
        await asyncio.wait_for(phone.serve(phone.agent(engine=EchoEngine()), port=0), 5)
    assert phone.server is None
    check_bind("0.0.0.0", DashboardAuth("", allow_open=True))  # the explicit opt-in
    check_bind("0.0.0.0", DashboardAuth(TOKEN))
    check_bind("::1", DashboardAuth(""))


def test_host_of_strips_ports_and_brackets():
    assert host_of("127.0.0.1:8000") == "127.0.0.1"
    assert host_of("[::1]:8000") == "::1"
    assert host_of("localhost") == "localhost"


async def test_calls_one_call_and_exports():
    async with twilio_rig(serve_kwargs={"dashboard_token": TOKEN}) as rig:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        call_id = await a_call(rig)

        async def ended() -> Any:
            _, body, _ = await get(rig, "/dashboard/api/calls", auth)
            calls = json.loads(body)["calls"]
            return calls if calls and calls[0]["status"] != "live" else None

        calls = await eventually(ended)
        assert [c["call_id"] for c in calls] == [call_id]
        assert calls[0]["caller"] == "+15550007777" and calls[0]["direction"] == "inbound"

        status, body, _ = await get(rig, f"/dashboard/api/calls/{call_id}", auth)
        one = json.loads(body)
        assert status == 200 and one["transcript"][0]["text"] == HOSTILE

        status, body, headers = await get(rig, f"/dashboard/api/calls/{call_id}/export", auth)
        assert status == 200 and "attachment" in headers["Content-Disposition"]
        assert json.loads(body)["transcript"][0]["text"] == HOSTILE

        status, body, headers = await get(rig, "/dashboard/api/calls.csv", auth)
        assert status == 200 and headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(body)))
        assert [r["call_id"] for r in rows] == [call_id]
        assert rows[0]["caller"] == "+15550007777"

        status, _, _ = await get(rig, "/dashboard/api/calls/nope", auth)
        assert status == 404
        status, body, _ = await get(rig, "/dashboard/api/totals", auth)
        assert json.loads(body)["days"][0]["calls"] == 1


async def test_hostile_transcript_is_escaped_in_the_server_rendered_page():
    async with twilio_rig() as rig:
        call_id = await a_call(rig)

        async def page() -> Any:
            status, body, _ = await get(rig, f"/dashboard/calls/{call_id}")
            return body if status == 200 and "alert(1)" in body else None

        body = await eventually(page)
        assert "<script>alert(1)" not in body
        assert (
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot; &#x27;too&#x27;" in body
        )
        status, listing, _ = await get(rig, "/dashboard")
        assert status == 200 and call_id in listing


def test_render_call_escapes_every_field():
    call = {
        "call_id": "c1",
        "agent": '"><img src=x onerror=alert(1)>',
        "transcript": [{"role": "<b>", "text": HOSTILE}],
    }
    html = render_call(call)
    assert "<img" not in html and "<b>" not in html and "<script>alert" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_csv_cells_cannot_become_formulas_but_numbers_stay():
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell("+15550007777") == "+15550007777"
    assert csv_cell(1.5) == 1.5


async def test_live_updates_arrive_over_sse_and_shutdown_is_prompt():
    async with (
        twilio_rig() as rig,
        aiohttp.ClientSession() as http,
        http.get(base(rig) + "/dashboard/api/events") as resp,
    ):
        assert resp.headers["Content-Type"] == "text/event-stream"
        call = await rig.sim.inbound_call()
        async with asyncio.timeout(10):
            async for raw in resp.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    if event["type"] == "call.started":
                        break
        assert event["direction"] == "inbound"
        await call.hangup()
        await rig.next_event("call.ended")
        loop = asyncio.get_running_loop()
        began = loop.time()
        await rig.phone.disconnect()
        assert loop.time() - began < 5, "an open event stream must not hold up shutdown"


async def test_history_comes_from_the_store(tmp_path):
    store = CallStore(tmp_path, retention_days=0, redact="full")
    ts = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    store.write_events(
        [
            CallStarted(call_id="old1", seq=1, ts=ts, direction="outbound", callee="+15550001111"),
            Transcript(call_id="old1", seq=2, ts=ts, role="agent", text="hello from yesterday"),
            CallEnded(call_id="old1", seq=3, ts=ts, duration_s=60.0),
        ]
    )
    try:
        from patter_core.bus import EventBus

        dash = Dashboard(EventBus(), lambda: store, DashboardAuth(""))
        assert [c["call_id"] for c in dash.calls()] == ["old1"]
        one = dash.call("old1")
        assert one is not None and one["transcript"][0]["text"] == "hello from yesterday"
        assert dash.totals() == [{"day": "2026-11-30", "calls": 1, "minutes": 1.0, "cost": 0.0}]
        assert dash.call("../etc/passwd") is None
    finally:
        store.close()


async def test_dashboard_false_serves_nothing():
    async with twilio_rig(serve_kwargs={"dashboard": False}) as rig:
        status, _, _ = await get(rig, "/dashboard/api/calls")
        assert status == 404


async def test_totals_page_draws_a_bar_per_day_and_logout_ends_the_session():
    async with twilio_rig(serve_kwargs={"dashboard_token": TOKEN}) as rig:
        await a_call(rig, "hello")
        auth = {"Authorization": f"Bearer {TOKEN}"}

        async def drawn() -> Any:
            _, body, _ = await get(rig, "/dashboard/totals", auth)
            return body if "<rect" in body else None

        body = await eventually(drawn)
        assert body.count("<rect") == 1 and "1 calls" in body
        async with aiohttp.ClientSession() as http:
            url = base(rig) + "/dashboard/login"
            async with http.post(url, data={"token": TOKEN}, allow_redirects=False) as resp:
                sid = resp.headers["Set-Cookie"].split(";", 1)[0]
            async with http.post(
                base(rig) + "/dashboard/logout", headers={"Cookie": sid}, allow_redirects=False
            ) as resp:
                assert resp.status == 303
        status, _, _ = await get(rig, "/dashboard/api/calls", {"Cookie": sid})
        assert status == 401
