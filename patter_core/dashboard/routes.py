"""Dashboard routes on the SDK's aiohttp app: HTML pages, JSON, exports and SSE.

Pages are rendered server-side with every value passed through
``html.escape`` (transcripts are whatever the caller said); the page script
only ever writes ``textContent``. Calls come from an in-memory view fed by the
bus (fresh, includes live calls) and from the store (history).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web

from patter_core.bus import EventBus, Gap, Subscription
from patter_core.dashboard.auth import COOKIE, DashboardAuth
from patter_core.events import BaseEvent
from patter_core.server.app import FailureLimiter
from patter_core.store import CallStore

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
HEARTBEAT_S = 15.0
MAX_STREAMS = 32
MEMORY_CALLS = 500
MEMORY_LINES = 2000
CSV_COLUMNS = (
    "call_id",
    "direction",
    "caller",
    "callee",
    "carrier",
    "agent",
    "status",
    "reason",
    "started_at",
    "ended_at",
    "duration_s",
    "turns",
    "cost_total",
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_NUMERIC = re.compile(r"^[+-]?[0-9][0-9 .()-]*$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LiveCalls:
    """Recent calls folded from the bus, in the store's row shape; bounded."""

    def __init__(self) -> None:
        self.calls: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def apply(self, ev: BaseEvent) -> None:
        kind = getattr(ev, "type", "")
        call = self.calls.get(ev.call_id)
        if call is None:
            if kind != "call.started":
                return
            call = {
                "call_id": ev.call_id,
                "direction": getattr(ev, "direction", ""),
                "caller": getattr(ev, "caller", ""),
                "callee": getattr(ev, "callee", ""),
                "carrier": getattr(ev, "carrier", ""),
                "agent": getattr(ev, "agent", ""),
                "status": "live",
                "reason": "",
                "started_at": ev.ts.isoformat(),
                "ended_at": None,
                "duration_s": None,
                "turns": 0,
                "cost_total": 0.0,
                "day": ev.ts.date().isoformat(),
                "transcript": [],
                "turns_detail": [],
                "cost": None,
            }
            self.calls[ev.call_id] = call
            while len(self.calls) > MEMORY_CALLS:
                self.calls.popitem(last=False)
        if kind == "transcript" and getattr(ev, "final", True):
            lines = call["transcript"]
            lines.append(
                {
                    "ts": ev.ts.isoformat(),
                    "role": getattr(ev, "role", ""),
                    "text": getattr(ev, "text", ""),
                    "interrupted": int(getattr(ev, "interrupted", False)),
                    "turn": getattr(ev, "turn", 0),
                }
            )
            del lines[:-MEMORY_LINES]
        elif kind == "turn.metrics":
            dumped = ev.model_dump(mode="json")
            call["turns_detail"].append(
                {k: dumped[k] for k in ("turn", "ts", "latency", "cost", "total_cost")}
            )
            call["turns"] = max(call["turns"], dumped["turn"])
            call["cost_total"] = dumped["total_cost"]
        elif kind == "call.ended":
            cost = getattr(ev, "cost", None)
            call.update(
                status=getattr(ev, "status", "completed"),
                reason=getattr(ev, "reason", ""),
                ended_at=ev.ts.isoformat(),
                duration_s=getattr(ev, "duration_s", 0.0),
                turns=getattr(ev, "turns", 0) or call["turns"],
            )
            if cost is not None:
                parts = cost.model_dump(mode="json")
                parts.pop("units", None)
                parts["total"] = cost.total
                call["cost"] = {"call_id": ev.call_id, **parts}
                call["cost_total"] = cost.total


def summary(call: dict[str, Any]) -> dict[str, Any]:
    return {k: call.get(k) for k in (*CSV_COLUMNS, "day")}


def csv_cell(value: Any) -> Any:
    """Neutralise spreadsheet formulas (``=``, ``@``, …) but keep phone numbers as they are."""
    if isinstance(value, str) and value and value[0] in "=+-@\t\r" and not _NUMERIC.match(value):
        return "'" + value
    return value


def _when(value: Any) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC, as stored)."""
    return str(value)[:19].replace("T", " ") if value else "–"


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _page(title: str, body: str, *, script: bool = True) -> str:
    js = '<script src="/dashboard/static/app.js" defer></script>' if script else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Patter</title>"
        f'<link rel="stylesheet" href="/dashboard/static/style.css">{js}</head><body>'
        '<header><a class="brand" href="/dashboard">Patter</a>'
        '<nav><a href="/dashboard">Calls</a><a href="/dashboard/totals">Totals</a>'
        '<a href="/dashboard/api/calls.csv">CSV</a></nav>'
        '<span id="live" class="live" title="live updates">●</span></header>'
        f"<main>{body}</main></body></html>"
    )


def render_calls(calls: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr data-call-id="{escape(c["call_id"])}" class="{escape(str(c.get("status")))}">'
        f'<td><a href="/dashboard/calls/{escape(c["call_id"])}">{escape(c["call_id"])}</a></td>'
        f"<td>{escape(_when(c.get('started_at')))}</td>"
        f"<td>{escape(_fmt(c.get('direction')))}</td>"
        f"<td>{escape(_fmt(c.get('caller')))}</td>"
        f"<td>{escape(_fmt(c.get('callee')))}</td>"
        f"<td>{escape(_fmt(c.get('agent')))}</td>"
        f"<td>{escape(_fmt(c.get('status')))}</td>"
        f"<td>{escape(_fmt(c.get('duration_s'), 1))}</td>"
        f"<td>{escape(_fmt(c.get('turns')))}</td>"
        f"<td>{escape(_fmt(c.get('cost_total'), 4))}</td></tr>"
        for c in calls
    )
    return _page(
        "Calls",
        '<h1>Calls</h1><table id="calls" data-page="calls"><thead><tr><th>Call</th>'
        "<th>Started</th><th>Dir</th><th>From</th><th>To</th><th>Agent</th><th>Status</th>"
        "<th>Secs</th><th>Turns</th><th>Cost $</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>",
    )


def render_call(call: dict[str, Any]) -> str:
    cid = escape(call["call_id"])
    facts = "".join(
        f"<dt>{escape(label)}</dt><dd data-field='{key}'>"
        f"{escape(_when(call.get(key)) if key == 'started_at' else _fmt(call.get(key)))}</dd>"
        for label, key in (
            ("Status", "status"),
            ("Reason", "reason"),
            ("Direction", "direction"),
            ("From", "caller"),
            ("To", "callee"),
            ("Agent", "agent"),
            ("Started", "started_at"),
            ("Duration (s)", "duration_s"),
            ("Cost ($)", "cost_total"),
        )
    )
    lines = "".join(
        f'<li class="{escape(str(t.get("role")))}"><span class="role">'
        f'{escape(str(t.get("role")))}</span> <span class="text">'
        f"{escape(str(t.get('text')))}</span></li>"
        for t in call.get("transcript") or []
    )
    turns = "".join(
        f"<tr><td>{escape(_fmt(t.get('turn')))}</td>"
        f"<td>{escape(_fmt((t.get('latency') or {}).get('end_of_speech_to_first_audio_ms'), 0))}"
        f"</td><td>{escape(_fmt((t.get('latency') or {}).get('llm_first_token_ms'), 0))}</td>"
        f"<td>{escape(_fmt(t.get('total_cost'), 4))}</td></tr>"
        for t in call.get("turns_detail") or []
    )
    cost = call.get("cost") or {}
    parts = " · ".join(
        f"{escape(k)} {escape(_fmt(cost.get(k), 4))}"
        for k in ("carrier", "stt", "llm", "tts", "realtime")
        if cost.get(k)
    )
    return _page(
        f"Call {call['call_id']}",
        f'<h1>Call <span class="mono">{cid}</span></h1>'
        f'<p><a href="/dashboard/api/calls/{cid}/export">Export JSON</a></p>'
        f'<section data-page="call" data-call-id="{cid}"><dl id="facts">{facts}</dl>'
        f'<p class="cost">{parts}</p>'
        f'<h2>Transcript</h2><ol id="transcript">{lines}</ol>'
        '<h2>Turns</h2><table id="turns"><thead><tr><th>Turn</th><th>Speech→audio ms</th>'
        f"<th>LLM first token ms</th><th>Cost $</th></tr></thead><tbody>{turns}</tbody></table>"
        "</section>",
    )


def render_chart(days: list[dict[str, Any]], width: int = 720, height: int = 200) -> str:
    """Calls per day as an inline SVG bar chart (no script, no external assets)."""
    if not days:
        return "<p>No calls yet.</p>"
    top = max(int(d.get("calls") or 0) for d in days) or 1
    step = width / len(days)
    bar = max(step * 0.7, 1.0)
    bars = []
    for i, d in enumerate(days):
        n = int(d.get("calls") or 0)
        h = (height - 20) * n / top
        x = i * step + (step - bar) / 2
        label = (
            f"{d.get('day')}: {n} calls, {_fmt(d.get('minutes'))} min, ${_fmt(d.get('cost'), 4)}"
        )
        bars.append(
            f'<rect x="{x:.1f}" y="{height - 20 - h:.1f}" width="{bar:.1f}" height="{h:.1f}">'
            f"<title>{escape(label)}</title></rect>"
            f'<text x="{x + bar / 2:.1f}" y="{height - 5}" text-anchor="middle">'
            f"{escape(str(d.get('day'))[5:])}</text>"
        )
    return (
        f'<svg id="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="calls per day">{"".join(bars)}</svg>'
    )


def render_totals(days: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(d.get('day')))}</td><td>{escape(_fmt(d.get('calls')))}</td>"
        f"<td>{escape(_fmt(d.get('minutes')))}</td><td>{escape(_fmt(d.get('cost'), 4))}</td></tr>"
        for d in days
    )
    return _page(
        "Totals",
        f"<h1>Totals by day</h1>{render_chart(days)}"
        '<table id="totals"><thead><tr><th>Day</th><th>Calls</th><th>Minutes</th>'
        f"<th>Cost $</th></tr></thead><tbody>{rows}</tbody></table>",
        script=False,
    )


LOGIN_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Patter · log in</title>'
    "</head><body><h1>Patter dashboard</h1>{message}"
    '<form method="post" action="/dashboard/login"><label>Token '
    '<input type="password" name="token" autocomplete="current-password" autofocus></label> '
    '<button type="submit">Log in</button></form></body></html>'
)


class Dashboard:
    """Owns the dashboard's routes, its bus subscription and every open event stream."""

    def __init__(
        self,
        bus: EventBus,
        store: Callable[[], CallStore | None],
        auth: DashboardAuth,
    ) -> None:
        self.bus = bus
        self.store = store
        self.auth = auth
        self.live = LiveCalls()
        self.limiter = FailureLimiter(10)
        self._feed: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._streams: set[Subscription] = set()

    # --- wiring --------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        guarded: list[tuple[str, Handler]] = [
            ("/dashboard", self._calls_page),
            ("/dashboard/", self._calls_page),
            ("/dashboard/calls/{call_id}", self._call_page),
            ("/dashboard/totals", self._totals_page),
            ("/dashboard/static/{name}", self._static),
            ("/dashboard/api/calls", self._api_calls),
            ("/dashboard/api/calls.csv", self._api_csv),
            ("/dashboard/api/calls/{call_id}", self._api_call),
            ("/dashboard/api/calls/{call_id}/export", self._api_export),
            ("/dashboard/api/totals", self._api_totals),
            ("/dashboard/api/events", self._events),
        ]
        for path, handler in guarded:
            app.router.add_get(path, self._guard(handler))
        app.router.add_get("/dashboard/login", self._login_form)
        app.router.add_post("/dashboard/login", self._login)
        app.router.add_post("/dashboard/logout", self._guard(self._logout))
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)

    async def _on_startup(self, app: web.Application) -> None:
        # Runs in runner.setup(), before the socket listens: no call.started is missed.
        self._feed = self.bus.subscribe(maxsize=10_000, name="dashboard")
        self._task = asyncio.create_task(self._fold(self._feed), name="dashboard-feed")

    async def _on_shutdown(self, app: web.Application) -> None:
        """Close the feed and every SSE stream so the server's drain does not wait on them."""
        for sub in list(self._streams):
            sub.close()
        if self._feed is not None:
            self._feed.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _fold(self, sub: Subscription) -> None:
        async for item in sub:
            if not isinstance(item, Gap):
                self.live.apply(item)

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.auth.allowed(request):
                if not self.auth.enabled:
                    return web.Response(status=403, text="dashboard is local only\n")
                if request.path.startswith("/dashboard/api/"):
                    return web.json_response({"error": "unauthorized"}, status=401)
                raise web.HTTPSeeOther("/dashboard/login")
            response = await handler(request)
            if not response.prepared:
                response.headers.update(SECURITY_HEADERS)
            return response

        return guarded

    # --- data ------------------------------------------------------------------------

    def calls(self, limit: int = 100) -> list[dict[str, Any]]:
        out = {cid: summary(c) for cid, c in reversed(self.live.calls.items())}
        store = self.store()
        if store is not None:
            for row in store.list_calls(limit=limit):
                out.setdefault(row["call_id"], summary(row))
        rows = sorted(out.values(), key=lambda c: str(c.get("started_at") or ""), reverse=True)
        return rows[:limit]

    def call(self, call_id: str) -> dict[str, Any] | None:
        if not _ID.match(call_id):
            return None
        if call_id in self.live.calls:
            return dict(self.live.calls[call_id])
        store = self.store()
        return store.get_call(call_id) if store is not None else None

    def totals(self) -> list[dict[str, Any]]:
        store = self.store()
        if store is not None:
            return store.totals_by_day()
        days: dict[str, dict[str, Any]] = {}
        for c in self.live.calls.values():
            d = days.setdefault(
                c["day"], {"day": c["day"], "calls": 0, "minutes": 0.0, "cost": 0.0}
            )
            d["calls"] += 1
            d["minutes"] = round(d["minutes"] + (c.get("duration_s") or 0.0) / 60.0, 3)
            d["cost"] = round(d["cost"] + (c.get("cost_total") or 0.0), 6)
        return [days[k] for k in sorted(days)]

    @staticmethod
    def _limit(request: web.Request) -> int:
        try:
            return max(1, min(int(request.query.get("limit", "100")), 1000))
        except ValueError:
            raise web.HTTPBadRequest(text="limit must be a number\n") from None

    def _call_or_404(self, request: web.Request) -> dict[str, Any]:
        call = self.call(request.match_info["call_id"])
        if call is None:
            raise web.HTTPNotFound(text="no such call\n")
        return call

    # --- pages -------------------------------------------------------------------------

    @staticmethod
    def _html(text: str) -> web.Response:
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def _calls_page(self, request: web.Request) -> web.StreamResponse:
        return self._html(render_calls(self.calls(self._limit(request))))

    async def _call_page(self, request: web.Request) -> web.StreamResponse:
        return self._html(render_call(self._call_or_404(request)))

    async def _totals_page(self, request: web.Request) -> web.StreamResponse:
        return self._html(render_totals(self.totals()))

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = STATIC_FILES.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        return web.Response(body=(STATIC / name).read_bytes(), content_type=kind, charset="utf-8")

    async def _login_form(self, request: web.Request) -> web.StreamResponse:
        if not self.auth.enabled:
            raise web.HTTPSeeOther("/dashboard")
        return self._login_page("")

    def _login_page(self, message: str, status: int = 200) -> web.Response:
        resp = web.Response(
            text=LOGIN_PAGE.format(message=message),
            status=status,
            content_type="text/html",
            charset="utf-8",
        )
        resp.headers.update(SECURITY_HEADERS)
        return resp

    async def _login(self, request: web.Request) -> web.StreamResponse:
        if not self.auth.enabled:
            raise web.HTTPSeeOther("/dashboard")
        ip = request.remote or ""
        if self.limiter.blocked(ip):
            return self._login_page("<p>Too many attempts; wait a minute.</p>", 429)
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not self.auth.token_matches(token):
            self.limiter.fail(ip)
            log.warning("dashboard: failed login from %s", ip)
            return self._login_page("<p>Wrong token.</p>", 401)
        resp = web.HTTPSeeOther("/dashboard")
        self.auth.set_cookie(resp, self.auth.new_session())
        raise resp

    async def _logout(self, request: web.Request) -> web.StreamResponse:
        self.auth.end_session(request.cookies.get(COOKIE, ""))
        resp = web.HTTPSeeOther("/dashboard/login")
        resp.del_cookie(COOKIE, path="/dashboard")
        raise resp

    # --- JSON and exports -----------------------------------------------------------

    async def _api_calls(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"calls": self.calls(self._limit(request))})

    async def _api_call(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._call_or_404(request))

    async def _api_export(self, request: web.Request) -> web.StreamResponse:
        call = self._call_or_404(request)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", call["call_id"])
        return web.Response(
            text=json.dumps(call, indent=2, default=str),
            content_type="application/json",
            headers={"Content-Disposition": f'attachment; filename="call-{name}.json"'},
        )

    async def _api_csv(self, request: web.Request) -> web.StreamResponse:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for call in self.calls(self._limit(request)):
            writer.writerow([csv_cell(call.get(k)) for k in CSV_COLUMNS])
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return web.Response(
            text=buf.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="calls-{stamp}.csv"'},
        )

    async def _api_totals(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"days": self.totals()})

    # --- live updates ------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every bus event as JSON; a comment line as heartbeat."""
        if len(self._streams) >= MAX_STREAMS:
            return web.json_response({"error": "too many open event streams"}, status=503)
        sub = self.bus.subscribe(maxsize=500, name="dashboard-sse")
        self._streams.add(sub)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **SECURITY_HEADERS})
        try:
            await resp.prepare(request)
            await resp.write(b": open\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(sub.get(), HEARTBEAT_S)
                except TimeoutError:
                    await resp.write(b": ping\n\n")
                    continue
                except StopAsyncIteration:
                    break
                if isinstance(item, Gap):
                    data = json.dumps({"type": "gap", "missed": item.missed})
                else:
                    data = item.model_dump_json()
                await resp.write(f"data: {data}\n\n".encode())
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            sub.close()
            self._streams.discard(sub)
        return resp
