"""``Patter``: the SDK's front door (``serve`` for inbound, ``call`` for outbound).

It wires the pieces together and owns their lifetimes: the tunnel, the
public server with the carrier's webhook routes, the carrier's REST control,
one ``CallSession`` per media stream, the store and the SDK callbacks, all
listening on one ``EventBus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from patter_core.agent import Agent
from patter_core.audio.dtmf import dtmf_tones
from patter_core.brain import Brain, UnbuiltBrain
from patter_core.bus import EventBus
from patter_core.carriers.base import CarrierControl, CarrierError, CarrierLeg
from patter_core.carriers.telnyx import Carrier as TelnyxCarrier
from patter_core.carriers.telnyx import TelnyxControl, TelnyxRoutes
from patter_core.carriers.twilio import Carrier as TwilioCarrier
from patter_core.carriers.twilio import TwilioControl, TwilioRoutes
from patter_core.dashboard import Dashboard, DashboardAuth, check_bind
from patter_core.events import CallEnded, CallStarted, ErrorEvent
from patter_core.guardrails import Guardrail
from patter_core.pricing import Pricing
from patter_core.providers.http import hold_shared_session, release_shared_session
from patter_core.server.app import AtCapacity, CarrierRoutes, PatterServer, ServerConfig
from patter_core.server.registry import CallRecord
from patter_core.session.callbacks import Callback, CallbackRunner
from patter_core.session.config import DEFAULT_APOLOGY, CallInfo, VadKind
from patter_core.session.session import CallSession
from patter_core.store import CallStore, resolve_root
from patter_core.tools import Tool
from patter_core.tunnel import CloudflareTunnel, Static, Tunnel, normalize_host
from patter_core.validation import require_e164, require_port

log = logging.getLogger(__name__)

AnyCarrier = TwilioCarrier | TelnyxCarrier


def carrier_parts(carrier: AnyCarrier) -> tuple[CarrierRoutes, CarrierControl]:
    """The webhook routes and REST control for a carrier config; they share one client."""
    if isinstance(carrier, TelnyxCarrier):
        telnyx = TelnyxControl(carrier)
        return TelnyxRoutes(carrier, telnyx), telnyx
    return TwilioRoutes(carrier), TwilioControl(carrier)


@dataclass
class _CallControls:
    """Carrier actions for one live call, as the session's system tools need them."""

    phone: Patter
    record: CallRecord
    leg: CarrierLeg
    handed_off: bool = False  # hung up or transferred: the carrier knows the call is over

    async def transfer(self, number: str) -> None:
        await self.phone._control_or_raise().transfer(self.record.carrier_call_id, number)
        self.handed_off = True

    async def hangup(self) -> None:
        self.handed_off = True
        control = self.phone._control
        if control is not None and self.record.carrier_call_id:
            try:
                await control.hangup(self.record.carrier_call_id)
            except CarrierError as exc:
                log.warning("call %s: hang-up request failed: %s", self.record.call_id, exc)
        await self.leg.close()

    async def send_dtmf(self, digits: str) -> None:
        await self.leg.send_audio(dtmf_tones(digits, self.leg.wire_format))


class Patter:
    def __init__(
        self,
        carrier: AnyCarrier | None = None,
        phone_number: str = "",
        webhook_url: str = "",
        tunnel: CloudflareTunnel | Static | bool | None = None,
        pricing: dict[str, float] | None = None,
        persist: bool | str | None = None,
        *,
        require_signature: bool = True,
        bus: EventBus | None = None,
        bind_host: str | None = None,
        store_options: dict[str, Any] | None = None,
        max_calls: int | None = None,
    ) -> None:
        if webhook_url and tunnel:
            raise ValueError("webhook_url and tunnel are mutually exclusive: pass one of them")
        if carrier is not None:
            carrier.require()
            if not phone_number:
                raise ValueError("phone_number is required when a carrier is set")
        if phone_number:
            require_e164(phone_number, "phone_number")
        self.carrier = carrier
        self.phone_number = phone_number
        self.webhook_url = normalize_host(webhook_url) if webhook_url else ""
        self.tunnel = tunnel
        self.pricing = Pricing.with_overrides(pricing)
        self.persist = persist
        self.require_signature = require_signature
        self.bus = bus or EventBus()
        self.bind_host = bind_host
        self.store_options = dict(store_options or {})
        if max_calls is not None and max_calls < 1:
            raise ValueError(
                f"max_calls must be at least 1 (or None for no limit), got {max_calls}"
            )
        self.max_calls = max_calls
        # Inbound calls to a number listed here get that agent instead of serve()'s.
        self.routes: dict[str, Agent] = {}
        self.server: PatterServer | None = None
        self._control: CarrierControl | None = None
        self._agent: Agent | None = None
        self._serve_opts: dict[str, Any] = {}
        self._ready: asyncio.Future[str] | None = None
        self._tunnel_ready: asyncio.Future[str] | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tunnel: Tunnel | None = None
        self.sessions: dict[str, CallSession] = {}
        self._serving: dict[str, Agent] = {}  # call id -> the agent answering it
        self._agents: dict[int, Agent] = {}  # every agent that may hold provider sockets
        self._call_ended = asyncio.Condition()
        self._holds_session = False
        self.store: CallStore | None = None

    # --- agents ---------------------------------------------------------------

    def agent(
        self,
        engine: Any = None,
        *,
        stt: Any = None,
        llm: Any = None,
        tts: Any = None,
        system_prompt: str = "",
        first_message: str = "",
        voice: str = "",
        tools: list[Tool] | None = None,
        guardrails: list[Guardrail] | None = None,
        barge_in_threshold_ms: int = 300,
        vad: VadKind = "webrtc",
        name: str = "agent",
        apology: str = DEFAULT_APOLOGY,
        on_message: Callable[..., Any] | None = None,
    ) -> Agent:
        return Agent(
            engine=engine,
            stt=stt,
            llm=llm,
            tts=tts,
            system_prompt=system_prompt,
            first_message=first_message,
            voice=voice,
            tools=list(tools or []),
            guardrails=list(guardrails or []),
            barge_in_threshold_ms=barge_in_threshold_ms,
            vad=vad,
            name=name,
            apology=apology,
            on_message=on_message,
        )

    # --- readiness ------------------------------------------------------------------

    @property
    def ready(self) -> asyncio.Future[str]:
        """Resolves to the public host once serving; fails with serve()'s error."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
        return self._ready

    @property
    def tunnel_ready(self) -> asyncio.Future[str]:
        """Resolves to the public host as soon as it is known (the tunnel is up),
        before the server listens: enough to register a webhook by hand, too early
        for ``call()``, whose answer could race the server's start. Use ``ready``."""
        if self._tunnel_ready is None:
            self._tunnel_ready = asyncio.get_running_loop().create_future()
        return self._tunnel_ready

    def _control_or_raise(self) -> CarrierControl:
        if self._control is None:
            raise RuntimeError("no carrier configured")
        return self._control

    # --- serving -------------------------------------------------------------------

    async def serve(
        self,
        agent: Agent,
        port: int = 8000,
        recording: bool = False,
        on_call_start: Callback | None = None,
        on_call_end: Callback | None = None,
        on_transcript: Callback | None = None,
        on_message: Callable[..., Any] | None = None,
        on_metrics: Callback | None = None,
        voicemail_message: str = "",
        dashboard: bool = True,
        dashboard_token: str = "",
        tunnel: CloudflareTunnel | Static | bool | None = None,
        dashboard_allow_open: bool = False,
    ) -> None:
        """Answer calls with ``agent`` until ``disconnect()``; blocks meanwhile.

        ``dashboard`` serves ``/dashboard`` on the same port; without
        ``dashboard_token`` it answers only requests addressed to loopback, and a
        non-loopback bind is refused unless ``dashboard_allow_open=True``.
        """
        ready = self.ready
        try:
            if port != 0:
                require_port(port)
            if on_message is not None and agent.llm is not None:
                raise ValueError("llm= and on_message are mutually exclusive: use one of them")
            if on_message is not None and not agent.is_pipeline:
                raise ValueError("on_message works in pipeline mode (stt= and tts=), not engines")
            for served in (agent, *self.routes.values()):
                served.check_servable(on_message)
            if tunnel and self.webhook_url:
                raise ValueError("webhook_url and tunnel are mutually exclusive: pass one of them")
            self._agent = agent
            self._serve_opts = {
                "recording": recording,
                "on_message": on_message,
                "voicemail_message": voicemail_message,
            }
            self._stop = asyncio.Event()
            for known in (agent, *self.routes.values()):
                self._agents[id(known)] = known
            if not self._holds_session:
                hold_shared_session()
                self._holds_session = True
            self._open_store()
            dash = DashboardAuth(dashboard_token, allow_open=dashboard_allow_open)
            host = await self._start(port, tunnel or self.tunnel, dash if dashboard else None)
            runner = CallbackRunner(
                self.bus,
                on_call_start=on_call_start,
                on_call_end=on_call_end,
                on_transcript=on_transcript,
                on_metrics=on_metrics,
            )
            self._spawn(runner.run())
        except BaseException as exc:
            for future in (ready, self.tunnel_ready):
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # retrieved here, so an unawaited one never warns
            await self._shutdown()
            raise
        ready.set_result(host)
        try:
            await self._stop.wait()
        finally:
            runner.close()
            await self._shutdown()

    async def _start(
        self,
        port: int,
        tunnel: CloudflareTunnel | Static | bool | None,
        dashboard: DashboardAuth | None = None,
    ) -> str:
        bind = self.bind_host or ServerConfig().host
        if dashboard is not None:
            check_bind(bind, dashboard)
        public = self.webhook_url
        if tunnel:
            self._tunnel = CloudflareTunnel() if tunnel is True else tunnel
            assert self._tunnel is not None
            public = await self._tunnel.start(port)
        if not public:
            log.warning("no webhook_url or tunnel: carriers cannot reach this server from outside")
        if not self.tunnel_ready.done():
            self.tunnel_ready.set_result(public)
        carriers: list[CarrierRoutes] = []
        if self.carrier is not None:
            routes, self._control = carrier_parts(self.carrier)
            carriers.append(routes)
        config = ServerConfig(
            public_host=public,
            port=port,
            require_signature=self.require_signature,
            max_calls=self.max_calls,
        )
        if self.bind_host:
            config.host = self.bind_host
        self.server = PatterServer(config, self.bus, on_stream=self._on_stream, carriers=carriers)
        if dashboard is not None:
            Dashboard(self.bus, lambda: self.store, dashboard).install(self.server.app)
        await self.server.start()
        if self._control is not None and public:
            hook = f"https://{public}/webhooks/{self._control.name}/voice"
            try:
                await self._control.configure_number(self.phone_number, public)
                log.info("pointed %s at %s", self.phone_number, hook)
            except CarrierError as exc:
                log.warning(
                    "serving, but could not point %s's voice webhook at this server: %s "
                    "(set it in the %s console to %s)",
                    self.phone_number,
                    exc,
                    self._control.name.capitalize(),
                    hook,
                )
        return public

    def _open_store(self) -> None:
        root = resolve_root(self.persist)
        if root is None or self.store is not None:
            return
        self.store = CallStore(root, **self.store_options)
        interrupted = self.store.hydrate()
        if interrupted:
            log.warning(
                "%d calls were live when the last run stopped: marked interrupted", interrupted
            )
        self.store.attach(self.bus)
        log.info("call history in %s", root)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _on_stream(self, leg: CarrierLeg, record: CallRecord) -> None:
        agent = self.agent_for(record)
        if agent is None:
            await self._end_unserved(record, leg, "no agent serves this number")
            return
        try:
            session = self._new_session(agent, leg, record)
        except Exception as exc:
            log.exception("call %s: could not set up its session", record.call_id)
            await self._end_unserved(record, leg, f"call setup failed: {type(exc).__name__}")
            return
        controls = session.controls
        assert isinstance(controls, _CallControls)
        record.started_published = True
        record.session = session
        self.sessions[record.call_id] = session
        self._serving[record.call_id] = agent
        self._agents[id(agent)] = agent
        # An outbound call was dialled with recording on; only an answered one needs asking.
        if (
            self._serve_opts.get("recording")
            and record.direction == "inbound"
            and self._control is not None
            and self.server is not None
        ):
            self._spawn(self._record(record))
        try:
            await session.run()
            if session.ended_reason != "hangup" and not controls.handed_off:
                await self._hang_up_after_stream(controls)
        finally:
            record.ended_published = True
            self.sessions.pop(record.call_id, None)
            self._serving.pop(record.call_id, None)
            assert self.server is not None
            self.server.registry.mark_ended(record)
            async with self._call_ended:
                self._call_ended.notify_all()

    def agent_for(self, record: CallRecord) -> Agent | None:
        """Who answers this call: the agent already serving it, else the one it
        was placed with, else its number's route (inbound), else serve()'s."""
        chosen: Agent | None = self._serving.get(record.call_id) or record.options.get("agent")
        if chosen is None and record.direction == "inbound":
            chosen = self.routes.get(record.callee)
        return chosen or self._agent

    def replace_default_agent(self, agent: Agent) -> None:
        """The agent for outbound calls without one and numbers with no route,
        changed while serving (patterd's reload); calls already up keep theirs."""
        agent.check_servable(self._serve_opts.get("on_message"))
        old, self._agent = self._agent, agent
        self._agents[id(agent)] = agent
        if old is not None and old is not agent:
            self.retire([old])

    def retire(self, agents: Iterable[Agent]) -> None:
        """Agents no longer served (a config reload replaced them): their
        providers are closed once the last call they answer has ended."""
        current = {id(a) for a in (self._agent, *self.routes.values()) if a is not None}
        old = [a for a in agents if id(a) not in current]
        if old:
            self._spawn(self._close_when_idle(old))

    async def _close_when_idle(self, agents: list[Agent]) -> None:
        ids = {id(a) for a in agents}
        async with self._call_ended:
            await self._call_ended.wait_for(
                lambda: not any(id(a) in ids for a in self._serving.values())
            )
        for agent in agents:
            self._agents.pop(id(agent), None)
            await agent.close_providers()

    async def _hang_up_after_stream(self, controls: _CallControls) -> None:
        """The session ended on our side (a failed brain, a dropped socket, a
        shutdown): make sure the line is released too. Twilio ends the call with
        the stream, as its TwiML has nothing after it; a Telnyx call outlives its
        stream, and a caller would sit in silence, billed, until they hung up."""
        control = self._control
        if control is not None and not control.stream_end_ends_call:
            await controls.hangup()

    def _new_session(self, agent: Agent, leg: CarrierLeg, record: CallRecord) -> CallSession:
        opts = self._serve_opts
        voicemail = record.options.get("voicemail_message") or opts.get("voicemail_message", "")
        config = agent.session_config(
            pricing=self.pricing,
            voicemail_message=voicemail,
            first_message=record.options.get("first_message") or None,
        )
        info = CallInfo(
            call_id=record.call_id,
            direction=record.direction,
            caller=record.caller,
            callee=record.callee,
            carrier=record.carrier,
            amd_pending=bool(record.options.get("machine_detection"))
            and record.amd_verdict is None,
        )
        try:
            brain: Brain = agent.create_brain(opts.get("on_message"))
        except Exception as exc:
            # The session still runs, so the caller is apologised to and hung up on.
            log.error("call %s: agent %r has no brain: %s", record.call_id, agent.name, exc)
            brain = UnbuiltBrain(f"{agent.name}: {exc}")
        return CallSession(
            leg,
            brain,
            self.bus,
            config,
            info,
            _CallControls(self, record, leg),
            on_machine_detection=record.options.get("on_machine_detection"),
            announce_start=not record.started_published,
        )

    async def _end_unserved(self, record: CallRecord, leg: CarrierLeg, why: str) -> None:
        """A call whose session could not even be made: hang it up and record why,
        so it neither holds a line nor a ``max_calls`` place, nor vanishes."""
        assert self.server is not None
        self.server.ensure_started(record)
        self.bus.publish(ErrorEvent(call_id=record.call_id, code="setup", message=why, fatal=True))
        await _CallControls(self, record, leg).hangup()
        self.server.end_unstreamed(record, "setup_failed", "failed")

    async def _record(self, record: CallRecord) -> None:
        assert self._control is not None and self.server is not None
        try:
            await self._control.start_recording(
                record.carrier_call_id, webhook_host=self.server.config.public_host
            )
        except CarrierError as exc:
            log.warning("call %s: could not start recording: %s", record.call_id, exc)

    # --- outbound ---------------------------------------------------------------------

    async def call(
        self,
        to: str,
        agent: Agent | None = None,
        first_message: str = "",
        from_number: str = "",
        machine_detection: bool = True,
        on_machine_detection: Callable[..., Any] | None = None,
        voicemail_message: str = "",
        ring_timeout: int | None = 25,
    ) -> str:
        """Place a call; returns its call id. Requires ``serve()`` to be running."""
        if self.server is None or self._ready is None or not self._ready.done():
            raise RuntimeError("call() needs a running server: start serve() and await phone.ready")
        if not self.server.accepting:
            raise RuntimeError("not accepting new calls (shutting down)")
        if self.server.admission() == "at_capacity":
            raise AtCapacity(
                f"at capacity (max_calls={self.max_calls}); try again when a call ends"
            )
        control = self._control_or_raise()
        if agent is not None:
            agent.check_servable(self._serve_opts.get("on_message"))
        require_e164(to, "to")
        caller = from_number or self.phone_number
        require_e164(caller, "from_number")
        if voicemail_message:
            machine_detection = True
        record = self.server.registry.new(
            direction="outbound", carrier=control.name, caller=caller, callee=to
        )
        record.options = {
            "agent": agent,
            "first_message": first_message,
            "voicemail_message": voicemail_message,
            "machine_detection": machine_detection,
            "on_machine_detection": on_machine_detection,
        }
        record.started_published = True
        self.bus.publish(
            CallStarted(
                call_id=record.call_id,
                direction="outbound",
                caller=caller,
                callee=to,
                carrier=control.name,
                agent=(agent or self._agent or Agent(engine=object())).name,
            )
        )
        try:
            placed = await control.place_call(
                to=to,
                from_=caller,
                call_id=record.call_id,
                webhook_host=self.server.config.public_host,
                machine_detection=machine_detection,
                ring_timeout=ring_timeout,
                record=bool(self._serve_opts.get("recording")),
                stream_url=self.server.stream_url(record),
            )
        except CarrierError as exc:
            record.ended_published = True
            self.bus.publish(CallEnded(call_id=record.call_id, reason="failed", status="failed"))
            self.server.registry.mark_ended(record)
            raise exc
        self.server.registry.bind_carrier_id(record, placed.carrier_call_id)
        return record.call_id

    async def hangup(self, call_id: str, *, reason: str = "hangup") -> None:
        """End a live call, whether it is talking or still ringing; ``reason`` is
        what its history says (``shutdown`` for a drain's grace period running out)."""
        session = self.sessions.get(call_id)
        if session is not None:
            session.end(reason)  # ends the call even if the carrier never confirms it
            await session.controls.hangup()
            return
        record = self.server.registry.get(call_id) if self.server is not None else None
        if record is None or record.state == "ended":
            raise KeyError(f"no live call {call_id}")
        if record.carrier_call_id:
            await self._control_or_raise().hangup(record.carrier_call_id)

    # --- shutdown -----------------------------------------------------------------

    async def disconnect(self) -> None:
        if self._stop is not None:
            self._stop.set()
        await self._shutdown()

    async def _shutdown(self) -> None:
        for session in list(self.sessions.values()):
            session.end("shutdown")
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            await self.server.stop()
        for agent in {id(a): a for a in (*self._agents.values(), *self.routes.values())}.values():
            await agent.close_providers()
        self._agents.clear()
        if self._holds_session:
            self._holds_session = False
            await release_shared_session()
        control, self._control = self._control, None
        if control is not None:
            await control.close()
        if self._tunnel is not None:
            await self._tunnel.stop()
            self._tunnel = None
        store, self.store = self.store, None
        if store is not None:
            await store.detach()
            store.close()
