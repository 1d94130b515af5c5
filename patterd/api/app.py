"""The control API's aiohttp application: routes, error mapping and the events WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from patter_core.events import BaseEvent
from patterd.api import models as m
from patterd.api.openapi import openapi_document
from patterd.config import ConfigError
from patterd.credentials import CredentialError, Credentials, check_name
from patterd.eventlog import EventLog
from patterd.metrics import Metrics
from patterd.runtime import (
    AtCapacity,
    CallNotFound,
    NotAccepting,
    Runtime,
    RuntimeFailure,
    UnknownAgent,
)

log = logging.getLogger(__name__)

WS_IDLE_S = 15.0
B = TypeVar("B", bound=BaseModel)


@dataclass
class ApiContext:
    runtime: Runtime
    events: EventLog
    metrics: Metrics
    credentials: Credentials
    version: str
    config_path: Path
    socket_path: Path
    accepting: Callable[[], bool]
    reload: Callable[[], Awaitable[None]]
    credential_names: Callable[[], Iterable[str]]
    describe: Callable[[], tuple[str, str | None]] = lambda: ("", None)
    """(carrier kind, public host) of the running config, for the status page."""
    started: float = 0.0
    max_calls: int | None = None  # read at start only, like the server it limits

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()


CTX: web.AppKey[ApiContext] = web.AppKey("patterd_ctx", ApiContext)


class CallHasEnded(Exception):
    """A live-call operation named a call that is in the store but no longer live."""


class KeyringUnavailable(Exception):
    """The OS keyring could not store or delete; the message says what to do instead."""


def _error(status: int, code: str, message: str, details: list[str] | None = None) -> web.Response:
    body = m.ErrorBody(error=m.ErrorDetail(code=code, message=message, details=details or []))
    return web.json_response(body.model_dump(), status=status)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def _validation_details(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        out.append(f"{where}: {err['msg']}")
    return out


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        return _error(422, "invalid_request", "request failed validation", _validation_details(exc))
    except CallNotFound as exc:
        return _error(404, "not_found", str(exc) or "no such call")
    except CallHasEnded as exc:
        return _error(409, "call_ended", str(exc))
    except KeyringUnavailable as exc:
        return _error(503, "keyring_unavailable", str(exc))
    except AtCapacity as exc:
        response = _error(503, "at_capacity", str(exc) or "max_calls calls are already up")
        response.headers["Retry-After"] = "5"
        return response
    except NotAccepting as exc:
        return _error(503, "not_accepting", str(exc) or "the daemon is not taking new calls")
    except UnknownAgent as exc:
        return _error(422, "unknown_agent", str(exc))
    except RuntimeFailure as exc:
        return _error(502, "runtime_failure", str(exc))
    except CredentialError as exc:
        return _error(400, "invalid_credential", str(exc))
    except ConfigError as exc:
        return _error(422, "invalid_config", "the config file has errors", exc.problems)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        if "Allow" in exc.headers:  # a 405 must say which methods are allowed (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("control API handler failed: %s %s", request.method, request.path)
        return _error(500, "internal", "internal error; see the daemon's log")


async def _body(request: web.Request, model: type[B]) -> B:
    raw = await request.read()
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise web.HTTPBadRequest(text="request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="request body must be a JSON object")
    return model.model_validate(data)


class CallsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)
    direction: str | None = None
    status: str | None = None
    number: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class TotalsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    until: datetime | None = None


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: int | None = Field(None, ge=0)
    call_id: str | None = Field(None, min_length=1)
    instance: str | None = Field(None, min_length=1, max_length=64)


def _query(request: web.Request, model: type[B]) -> B:
    return model.model_validate(dict(request.query))


async def status(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    carrier, public_host = ctx.describe()
    return _json(
        m.Status(
            version=ctx.version,
            pid=os.getpid(),
            uptime_s=round(time.monotonic() - ctx.started, 3),
            live_calls=len(ctx.runtime.live_calls()),
            accepting=ctx.accepting(),
            config_path=str(ctx.config_path),
            socket=str(ctx.socket_path),
            event_position=ctx.events.last_pos,
            instance=ctx.events.instance,
            carrier=carrier,
            public_host=public_host,
            max_calls=ctx.max_calls,
        )
    )


async def version(request: web.Request) -> web.Response:
    return _json(m.VersionInfo(version=request.app[CTX].version))


async def live_calls(request: web.Request) -> web.Response:
    return _json(m.LiveCalls(calls=request.app[CTX].runtime.live_calls()))


async def list_calls(request: web.Request) -> web.Response:
    q = _query(request, CallsQuery)
    rows = list(
        request.app[CTX].runtime.store.list_calls(
            q.limit,
            q.offset,
            direction=q.direction,
            status=q.status,
            number=q.number,
            since=q.since,
            until=q.until,
        )
    )
    next_offset = q.offset + len(rows) if len(rows) == q.limit else None
    return _json(m.CallPage(calls=rows, limit=q.limit, offset=q.offset, next_offset=next_offset))


async def get_call(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    call_id = request.match_info["call_id"]
    live = {c.call_id: c for c in ctx.runtime.live_calls()}
    row = ctx.runtime.store.get_call(call_id)
    if row is None:
        if call_id not in live:
            raise CallNotFound(f"no call {call_id!r}")
        row = live[call_id].model_dump(mode="json")
    return _json(m.CallDetail(call=row, live=call_id in live))


async def totals(request: web.Request) -> web.Response:
    q = _query(request, TotalsQuery)
    days = list(request.app[CTX].runtime.store.totals_by_day(q.since, q.until))
    return _json(m.DayTotals(days=days))


async def place_call(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = await _body(request, m.PlaceCallRequest)
    if not ctx.accepting():
        raise NotAccepting("patterd is shutting down and not placing new calls")
    call_id = await ctx.runtime.place_call(body.to, body.agent, body.first_message)
    return _json(m.PlacedCall(call_id=call_id), status=201)


@contextlib.contextmanager
def _live_call(ctx: ApiContext, call_id: str) -> Iterator[None]:
    """A runtime's CallNotFound for a call the store has: the call has ended (409), not 404."""
    try:
        yield
    except CallNotFound:
        if call_id in {c.call_id for c in ctx.runtime.live_calls()}:
            raise
        row = ctx.runtime.store.get_call(call_id)
        if row is None:
            raise
        status = row.get("status")
        raise CallHasEnded(
            f"call {call_id} has ended" + (f" (status: {status})" if status else "")
        ) from None


async def hangup(request: web.Request) -> web.Response:
    ctx, call_id = request.app[CTX], request.match_info["call_id"]
    with _live_call(ctx, call_id):
        await ctx.runtime.hangup(call_id)
    return _json(m.Ok())


async def transfer(request: web.Request) -> web.Response:
    ctx, call_id = request.app[CTX], request.match_info["call_id"]
    body = await _body(request, m.TransferRequest)
    with _live_call(ctx, call_id):
        await ctx.runtime.transfer(call_id, body.to)
    return _json(m.Ok())


async def dtmf(request: web.Request) -> web.Response:
    ctx, call_id = request.app[CTX], request.match_info["call_id"]
    body = await _body(request, m.DtmfRequest)
    with _live_call(ctx, call_id):
        await ctx.runtime.send_dtmf(call_id, body.digits)
    return _json(m.Ok())


async def list_credentials(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    infos = await asyncio.to_thread(ctx.credentials.list_names, tuple(ctx.credential_names()))
    return _json(
        m.CredentialList(
            credentials=[m.CredentialName(name=i.name, source=i.source) for i in infos]
        )
    )


async def set_credential(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    name = request.match_info["name"]
    body = await _body(request, m.CredentialSetRequest)
    check_name(name)  # a bad name is a 400; past this, failures are the keyring's
    try:
        await asyncio.to_thread(ctx.credentials.set, name, body.value)
    except CredentialError as exc:
        raise KeyringUnavailable(_keyring_hint(str(exc), name)) from None
    log.info("credential %s stored in the keyring", name)
    return web.Response(status=204)


def _keyring_hint(problem: str, name: str) -> str:
    return (
        f"{problem}. Without a usable OS keyring, set {name} in the daemon's environment,"
        f" the config's [credentials] table, or with systemd LoadCredential={name}:/path"
    )


async def delete_credential(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    name = request.match_info["name"]
    check_name(name)
    try:
        existed = await asyncio.to_thread(ctx.credentials.delete, name)
    except CredentialError as exc:
        raise KeyringUnavailable(_keyring_hint(str(exc), name)) from None
    if not existed:
        return _error(404, "not_found", f"credential {name} is not in the keyring")
    log.info("credential %s deleted from the keyring", name)
    return web.Response(status=204)


async def reload(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    await ctx.reload()
    return _json(m.Reloaded(reloaded=True, config_path=str(ctx.config_path)))


async def rebuild_store(request: web.Request) -> web.Response:
    n = await asyncio.to_thread(request.app[CTX].runtime.store.rebuild)
    return _json(m.Rebuilt(calls=n))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=request.app[CTX].metrics.render(),
        content_type="text/plain",
        headers={"X-Prometheus-Format": "0.0.4"},
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[CTX].version))


async def events(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    q = _query(request, EventsQuery)
    ws = web.WebSocketResponse(heartbeat=20.0)
    if not ws.can_prepare(request).ok:
        raise web.HTTPBadRequest(text="this route is a WebSocket; connect with Upgrade: websocket")
    await ws.prepare(request)
    cursor = ctx.events.last_pos if q.since is None else q.since
    reset = q.since is not None and not ctx.events.knows(q.since, q.instance)
    if reset:
        # A cursor ahead of this log, or from another instance: the daemon restarted
        # (or the client made it up). Say so, then replay this daemon's log from its start.
        cursor = 0
        frame = m.EventFrame(kind="reset", pos=0, instance=ctx.events.instance)
        await ws.send_str(frame.model_dump_json())
    sender = asyncio.create_task(_send_events(ws, ctx.events, cursor, q.call_id))
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        await ws.close()
    return ws


async def _send_events(
    ws: web.WebSocketResponse, events_: EventLog, cursor: int, call_id: str | None
) -> None:
    try:
        while not ws.closed:
            missed, entries = events_.after(cursor)
            if missed:
                cursor += missed
                frame = m.EventFrame(kind="gap", pos=cursor, missed=missed)
                await ws.send_str(frame.model_dump_json())
            for entry in entries:
                if call_id is None or entry.event.call_id == call_id:
                    await _send_event(ws, entry.pos, entry.event)
                cursor = entry.pos
            if events_.closed:
                break
            await events_.wait_beyond(cursor, WS_IDLE_S)
    except (ConnectionResetError, RuntimeError):
        return
    await ws.close(message=b"daemon shutting down")


async def _send_event(ws: web.WebSocketResponse, pos: int, event: BaseEvent) -> None:
    """One event that cannot be serialised is logged and passed over, so it can
    neither end this stream nor every stream that replays past it."""
    try:
        frame = m.EventFrame(kind="event", pos=pos, event=event.model_dump(mode="json"))
        body = frame.model_dump_json()
    except ValueError as exc:
        log.error(
            "event %d (%s, call %s) cannot be sent: %s",
            pos,
            getattr(event, "type", "?"),
            event.call_id,
            type(exc).__name__,
        )
        return
    await ws.send_str(body)


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=64 * 1024)
    app[CTX] = ctx
    r = app.router
    r.add_get("/v1/status", status)
    r.add_get("/v1/version", version)
    r.add_get("/v1/calls/live", live_calls)
    r.add_get("/v1/calls", list_calls)
    r.add_post("/v1/calls", place_call)
    r.add_get("/v1/calls/{call_id}", get_call)
    r.add_post("/v1/calls/{call_id}/hangup", hangup)
    r.add_post("/v1/calls/{call_id}/transfer", transfer)
    r.add_post("/v1/calls/{call_id}/dtmf", dtmf)
    r.add_get("/v1/totals", totals)
    r.add_get("/v1/credentials", list_credentials)
    r.add_put("/v1/credentials/{name}", set_credential)
    r.add_delete("/v1/credentials/{name}", delete_credential)
    r.add_post("/v1/config/reload", reload)
    r.add_post("/v1/store/rebuild", rebuild_store)
    r.add_get("/v1/events", events)
    r.add_get("/v1/metrics", metrics)
    r.add_get("/v1/openapi.json", openapi)
    return app
