"""The public server: carrier webhooks and media sockets, nothing else.

Carriers plug their webhook routes in beside each other; the media socket
route is shared and hands each authenticated stream to the carrier's leg
factory and then to ``on_stream`` (the call session). Only calls this server
answered or placed get a socket, and only with their per-call token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import WSCloseCode, web

from patter_core.bus import EventBus
from patter_core.carriers.base import CarrierLeg
from patter_core.events import CallEnded, CallStarted
from patter_core.server.registry import CallRecord, CallRegistry
from patter_core.validation import require_port

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000
MAX_WEBHOOK_BYTES = 64 * 1024
# Media frames are ~300 bytes; anything this large is not a media message,
# but it is counted and skipped by the leg rather than killing the call.
MAX_WS_MESSAGE_BYTES = 1024 * 1024
# How long stop() lets an in-flight request finish. Sessions have already ended by then;
# without a bound, a keep-alive connection that turns idle during shutdown holds it 60 s.
SHUTDOWN_TIMEOUT_S = 3.0

LegFactory = Callable[[web.WebSocketResponse, CallRecord], CarrierLeg]
StreamHandler = Callable[[CarrierLeg, CallRecord], Awaitable[None]]
ArrivalHandler = Callable[[CallRecord], Awaitable[None]]


# CallEnded reasons of inbound calls refused before they were answered.
REFUSAL_REASONS = ("at_capacity", "draining")


class AtCapacity(RuntimeError):
    """``max_calls`` calls are up: a new one would take audio from all of them."""


def default_bind_host() -> str:
    return os.environ.get("PATTER_BIND_HOST", "").strip() or "127.0.0.1"


@dataclass
class ServerConfig:
    public_host: str = ""
    host: str = field(default_factory=default_bind_host)
    port: int = DEFAULT_PORT
    require_signature: bool = True
    max_body_bytes: int = MAX_WEBHOOK_BYTES
    trusted_proxies: tuple[str, ...] = ()
    # Failed (unauthenticated) media-socket upgrades allowed per IP per minute.
    ws_failures_per_minute: int = 20
    # Calls up at once (ringing or talking, both directions) before new ones are refused.
    max_calls: int | None = None

    def __post_init__(self) -> None:
        if self.port != 0:
            require_port(self.port)
        if self.max_calls is not None and self.max_calls < 1:
            raise ValueError(
                f"max_calls must be at least 1 (or None for no limit), got {self.max_calls}"
            )

    @property
    def base_url(self) -> str:
        return f"https://{self.public_host}"


class CarrierRoutes(Protocol):
    """A carrier's webhook side: it adds routes and makes legs for its streams."""

    name: str

    def install(self, app: web.Application, server: PatterServer) -> None: ...

    def make_leg(self, ws: web.WebSocketResponse, record: CallRecord) -> CarrierLeg: ...


class FailureLimiter:
    """Sliding one-minute window of failed attempts per client address."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._hits: defaultdict[str, deque[float]] = defaultdict(deque)

    def _prune(self, ip: str) -> deque[float]:
        hits = self._hits[ip]
        cutoff = self.clock() - 60.0
        while hits and hits[0] < cutoff:
            hits.popleft()
        return hits

    def blocked(self, ip: str) -> bool:
        hits = self._prune(ip)
        if not hits:
            self._hits.pop(ip, None)
            return False
        return len(hits) >= self.per_minute

    def fail(self, ip: str) -> None:
        self._prune(ip).append(self.clock())


def client_ip(request: web.Request, trusted: Iterable[str]) -> str:
    """The caller's address; ``X-Forwarded-For`` counts only when a trusted proxy sent it."""
    peer = request.remote or ""
    nets = [ipaddress.ip_network(t, strict=False) for t in trusted]
    if not nets:
        return peer

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in nets)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


class PatterServer:
    def __init__(
        self,
        config: ServerConfig,
        bus: EventBus,
        *,
        registry: CallRegistry | None = None,
        on_stream: StreamHandler | None = None,
        on_call_arrived: ArrivalHandler | None = None,
        carriers: Iterable[CarrierRoutes] = (),
    ) -> None:
        self.config = config
        self.bus = bus
        self.registry = registry or CallRegistry()
        self.on_stream = on_stream
        self.on_call_arrived = on_call_arrived
        self.carriers = {c.name: c for c in carriers}
        self.limiter = FailureLimiter(config.ws_failures_per_minute)
        self.app = web.Application(client_max_size=config.max_body_bytes)
        self.app.router.add_get("/health", self._health)
        self.app.router.add_get("/ws/stream/{call_id}", self._media)
        self.app.router.add_get("/ws/stream/{call_id}/{token}", self._media)
        for carrier in self.carriers.values():
            carrier.install(self.app, self)
        self._runner: web.AppRunner | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self.started_at = time.time()
        self.port: int = config.port
        self.rejected_streams = 0
        self.accepting = True  # False while draining: new inbound calls are rejected

    def admission(self) -> str | None:
        """Why a new call must be refused right now, or None to take it.

        Past ``max_calls`` every call already up would lose audio if one more
        were taken (one core's figures are in bench/README.md), so the next
        caller hears busy instead.
        """
        if not self.accepting:
            return "draining"
        limit = self.config.max_calls
        if limit is not None and self.registry.live_count() >= limit:
            return "at_capacity"
        return None

    def record_refused(
        self, *, carrier: str, caller: str, callee: str, carrier_call_id: str, reason: str
    ) -> CallRecord:
        """Keep a refused inbound call in the history: an operator must see who heard busy."""
        record = self.registry.new(
            direction="inbound",
            carrier=carrier,
            caller=caller,
            callee=callee,
            carrier_call_id=carrier_call_id,
        )
        log.warning("refused inbound call %s from %s: %s", record.call_id, carrier, reason)
        self.end_unstreamed(record, reason, "busy")
        return record

    def ensure_started(self, record: CallRecord) -> None:
        """Publish the call's ``call.started`` once, whoever gets there first."""
        if record.started_published:
            return
        record.started_published = True
        self.bus.publish(
            CallStarted(
                call_id=record.call_id,
                direction=record.direction,
                caller=record.caller,
                callee=record.callee,
                carrier=record.carrier,
                carrier_call_id=record.carrier_call_id,
            )
        )

    def end_unstreamed(
        self, record: CallRecord, reason: str, status: str, duration_s: float = 0.0
    ) -> None:
        """End a call no media stream ran for (refused, busy, no answer, failed), once;
        a call with a session ends through its session instead."""
        if record.session is not None or record.ended_published:
            return
        self.ensure_started(record)
        record.ended_published = True
        self.bus.publish(
            CallEnded(call_id=record.call_id, reason=reason, status=status, duration_s=duration_s)
        )
        self.registry.mark_ended(record)

    def stream_url(self, record: CallRecord) -> str:
        return f"wss://{self.config.public_host}/ws/stream/{record.call_id}/{record.stream_token}"

    async def call_arrived(self, record: CallRecord) -> None:
        """The carrier's voice webhook came in: a chance to warm up the brain early."""
        if self.on_call_arrived is not None:
            try:
                await self.on_call_arrived(record)
            except Exception:
                log.exception("call %s: arrival hook failed", record.call_id)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "mode": "local",
                "live_calls": len(self.registry.live()),
                "carriers": sorted(self.carriers),
            }
        )

    async def _media(self, request: web.Request) -> web.StreamResponse:
        ip = client_ip(request, self.config.trusted_proxies)
        if self.limiter.blocked(ip):
            log.warning("media socket: too many failed attempts from %s", ip)
            return web.Response(status=429, text="too many failed stream attempts\n")
        record = self.registry.get(request.match_info["call_id"])
        token = request.match_info.get("token", "")
        ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, heartbeat=None)
        await ws.prepare(request)
        reason = None
        if record is None:
            reason = "unknown call"
        elif not token or not record.token_matches(token):
            reason = "bad stream token"
        elif record.state == "ended":
            reason = "call already ended"
        elif record.stream_opened:
            reason = "stream already open"
        if reason is not None or record is None:
            self.limiter.fail(ip)
            self.rejected_streams += 1
            log.warning("media socket from %s refused: %s", ip, reason)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"policy violation")
            return ws
        carrier = self.carriers.get(record.carrier)
        if carrier is None or self.on_stream is None:
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"no handler")
            return ws
        record.stream_opened = True
        record.state = "streaming"
        leg = carrier.make_leg(ws, record)
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            await self.on_stream(leg, record)
        except Exception:
            log.exception("call %s: stream handler failed", record.call_id)
        finally:
            if task is not None:
                self._streams.discard(task)
            with contextlib.suppress(Exception):
                await leg.close()
        return ws

    async def start(self) -> None:
        self._runner = web.AppRunner(
            self.app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("listening on %s:%d", self.config.host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
