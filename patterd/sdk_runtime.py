"""The daemon's runtime backed by the SDK: one ``Patter`` serving the configured numbers.

Agents declared in TOML are built here from provider names; agents given as
``module:object`` are imported (an ``Agent``, or a function taking the
``Patter`` and returning one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from patter_core import AtCapacity as SdkAtCapacity
from patter_core import EchoEngine, Guardrail, Patter, Telnyx, Tool, Twilio
from patter_core.agent import Agent
from patter_core.bus import EventBus
from patter_core.carriers.base import CarrierError
from patter_core.dashboard.auth import is_loopback
from patter_core.store import CallStore
from patterd.config import AgentConfig, DaemonConfig, resolve_python_agent
from patterd.credentials import DASHBOARD_TOKEN, Credentials
from patterd.runtime import (
    AtCapacity,
    CallNotFound,
    LiveCall,
    NotAccepting,
    RuntimeFailure,
    UnknownAgent,
)

log = logging.getLogger(__name__)


def _stt(name: str, options: dict[str, Any], credentials: Credentials) -> Any:
    from patter_core.providers import stt

    classes: dict[str, Callable[..., Any]] = {
        "local": stt.LocalSTT,
        "deepgram": stt.DeepgramSTT,
        "assemblyai": stt.AssemblyAISTT,
        "cartesia": stt.CartesiaSTT,
        "soniox": stt.SonioxSTT,
        "speechmatics": stt.SpeechmaticsSTT,
        "whisper": stt.WhisperSTT,
    }
    return _provider("stt", classes, name, options, credentials)


def _tts(name: str, options: dict[str, Any], credentials: Credentials) -> Any:
    from patter_core.providers import tts

    classes: dict[str, Callable[..., Any]] = {
        "local": tts.LocalTTS,
        "elevenlabs": tts.ElevenLabsTTS,
        "openai": tts.OpenAITTS,
        "cartesia": tts.CartesiaTTS,
        "rime": tts.RimeTTS,
        "lmnt": tts.LMNTTTS,
    }
    return _provider("tts", classes, name, options, credentials)


def _llm(name: str, options: dict[str, Any], credentials: Credentials) -> Any:
    from patter_core.providers import llm

    classes: dict[str, Callable[..., Any]] = {
        "openai": llm.OpenAILLM,
        "anthropic": llm.AnthropicLLM,
        "groq": llm.GroqLLM,
        "cerebras": llm.CerebrasLLM,
        "google": llm.GoogleLLM,
    }
    return _provider("llm", classes, name, options, credentials)


def _provider(
    kind: str,
    classes: dict[str, Callable[..., Any]],
    name: str,
    options: dict[str, Any],
    credentials: Credentials,
) -> Any:
    """Build one provider; its key comes from the credential chain (the config,
    the environment, systemd credentials, the keyring), not the environment only."""
    cls = _pick(kind, classes, name)
    options = dict(options)
    env_var = getattr(cls, "env_var", "")
    if "api_key" not in options and env_var and (key := credentials.get(env_var)):
        options["api_key"] = key
    try:
        return cls(**options)
    except (ValueError, TypeError) as exc:
        raise RuntimeFailure(f"{kind} provider {name!r}: {exc}") from None


def _engine(spec: AgentConfig, credentials: Credentials) -> Any:
    from patter_core.engines import ElevenLabsConvAI, EngineError, OpenAIRealtime

    options = dict(spec.options)
    try:
        if spec.engine == "openai_realtime":
            if spec.voice:
                options.setdefault("voice", spec.voice)
            key = options.pop("api_key", None) or credentials.get("OPENAI_API_KEY")
            return OpenAIRealtime(key, **options)
        key = options.pop("api_key", None) or credentials.get("ELEVENLABS_API_KEY")
        options.setdefault("agent_id", credentials.get("ELEVENLABS_AGENT_ID"))
        return ElevenLabsConvAI(key, **options)
    except (EngineError, TypeError) as exc:
        raise RuntimeFailure(f"engine {spec.engine!r}: {exc}") from None


def _needed(value: str | None, name: str, config_key: str = "") -> str:
    """A carrier credential, or a start-up error saying where patterd looks for it."""
    if value:
        return value
    where = f"{config_key} or " if config_key else ""
    raise RuntimeFailure(
        f"the carrier needs {name}: set {where}{name} in the credential chain"
        " ([credentials], the environment, $CREDENTIALS_DIRECTORY or the OS keyring)"
    )


def _pick(kind: str, classes: dict[str, Callable[..., Any]], name: str) -> Callable[..., Any]:
    if name not in classes:
        raise RuntimeFailure(
            f"{kind} provider {name!r} is not available in this build; "
            f"available: {', '.join(sorted(classes))}"
        )
    return classes[name]


def build_agent(phone: Patter, name: str, spec: AgentConfig, credentials: Credentials) -> Agent:
    """The agent for one ``[agents.NAME]`` table; an ``on_message`` handler
    travels on the agent, so each agent answers with its own."""
    if spec.agent is not None:
        obj = resolve_python_agent(spec.agent)
        if callable(obj) and not isinstance(obj, Agent):
            obj = obj(phone)
        on_message = None
        if isinstance(obj, tuple):
            obj, on_message = obj
        if not isinstance(obj, Agent):
            raise RuntimeFailure(f"{spec.agent} must be an Agent or return one")
        obj.name = name
        if on_message is not None:
            obj.on_message = on_message
        _check(obj)
        return obj
    tools = [
        Tool(name=t.name, description=t.description, parameters=t.parameters, webhook_url=t.url)
        for t in spec.tools
    ]
    rails = [
        Guardrail(name=g.name, blocked_terms=g.blocked_terms, replacement=g.replacement)
        for g in spec.guardrails
    ]
    common: dict[str, Any] = {
        "system_prompt": spec.system_prompt,
        "first_message": spec.first_message,
        "voice": spec.voice or "",
        "tools": tools,
        "guardrails": rails,
        "name": name,
    }
    if spec.engine == "echo":
        return phone.agent(engine=EchoEngine(), **common)
    if spec.engine is not None:
        return phone.agent(engine=_engine(spec, credentials), **common)
    assert spec.pipeline is not None
    stt = _stt(spec.pipeline.stt.provider, spec.pipeline.stt.options, credentials)
    tts = _tts(spec.pipeline.tts.provider, spec.pipeline.tts.options, credentials)
    if spec.pipeline.llm.provider == "on_message":
        ref = str(spec.pipeline.llm.options.get("handler", ""))
        handler = resolve_python_agent(ref)
        if not callable(handler):
            raise RuntimeFailure(f"handler {ref} is not a function")
        return phone.agent(stt=stt, tts=tts, on_message=handler, **common)
    llm = _llm(spec.pipeline.llm.provider, spec.pipeline.llm.options, credentials)
    return phone.agent(stt=stt, llm=llm, tts=tts, **common)


def _check(agent: Agent) -> None:
    """An agent that could not answer a call is a config error at load, not a
    failure on every call to its number."""
    try:
        agent.check_servable(None)
    except ValueError as exc:
        raise RuntimeFailure(str(exc)) from None


class SdkRuntime:
    def __init__(self, config: DaemonConfig, bus: EventBus, credentials: Credentials) -> None:
        self.config = config
        self.bus = bus
        self.credentials = credentials
        self._task: asyncio.Task[None] | None = None
        try:
            self.phone = self._make_phone(config)
        except ValueError as exc:
            raise RuntimeFailure(str(exc)) from None
        self.store: CallStore = _NoStore()  # type: ignore[assignment]
        self.agents: dict[str, Agent] = {}

    def _make_phone(self, config: DaemonConfig) -> Patter:
        carrier: Twilio | Telnyx | None = None
        creds = self.credentials
        if config.numbers and config.carrier.kind == "telnyx":
            carrier = Telnyx(
                api_key=_needed(creds.get("TELNYX_API_KEY"), "TELNYX_API_KEY"),
                connection_id=_needed(
                    config.carrier.connection_id or creds.get("TELNYX_CONNECTION_ID"),
                    "TELNYX_CONNECTION_ID",
                    "[carrier] connection_id",
                ),
                public_key=creds.get("TELNYX_PUBLIC_KEY") or "",
                api_base_url=config.carrier.api_base_url or "",
            )
        elif config.numbers:
            carrier = Twilio(
                account_sid=_needed(
                    config.carrier.account_sid or creds.get("TWILIO_ACCOUNT_SID"),
                    "TWILIO_ACCOUNT_SID",
                    "[carrier] account_sid",
                ),
                auth_token=_needed(creds.get("TWILIO_AUTH_TOKEN"), "TWILIO_AUTH_TOKEN"),
                api_base_url=config.carrier.api_base_url or "",
            )
        store = config.store
        return Patter(
            carrier=carrier,
            phone_number=next(iter(config.numbers), ""),
            webhook_url=config.server.public_host or "",
            pricing=config.pricing,
            # No [store] root: PATTER_LOG_DIR (the systemd unit sets it), else the default.
            persist=str(store.root) if store.root else None,
            bus=self.bus,
            bind_host=config.server.bind,
            store_options={"retention_days": store.retention_days, "redact": store.redact_phone},
            max_calls=config.server.max_calls,
        )

    def _load_agents(self, config: DaemonConfig) -> None:
        agents = {
            name: build_agent(self.phone, name, spec, self.credentials)
            for name, spec in config.agents.items()
        }
        old, self.agents = self.agents, agents
        self.phone.routes = {number: agents[name] for number, name in config.numbers.items()}
        self.phone.retire(old.values())

    def _default(self) -> Agent:
        name = self.config.default_agent or next(iter(self.config.numbers.values()), None)
        if name is None and self.agents:
            name = next(iter(self.agents))
        if name is None:
            raise RuntimeFailure("no agents configured: add an [agents.NAME] table")
        return self.agents[name]

    async def start(self) -> None:
        self._load_agents(self.config)
        agent = self._default()
        # With a token the dashboard is served on any bind and asks for it; without one
        # only where an open one is allowed (a loopback bind), rather than refuse to start.
        token = self.credentials.get(DASHBOARD_TOKEN) or ""
        dashboard = bool(token) or is_loopback(self.config.server.bind)
        if not dashboard:
            log.info(
                "dashboard off: %s is not a loopback bind and %s is not set",
                self.config.server.bind,
                DASHBOARD_TOKEN,
            )
        self._task = asyncio.create_task(
            self.phone.serve(
                agent,
                port=self.config.server.port,
                dashboard=dashboard,
                dashboard_token=token,
            )
        )
        try:
            await asyncio.wait_for(asyncio.shield(self.phone.ready), 60)
        except Exception as exc:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(BaseException):
                await task  # its error is the one reported here, not left unretrieved
            raise RuntimeFailure(f"could not start serving: {exc}") from None
        if self.phone.store is not None:
            self.store = self.phone.store

    def live_calls(self) -> list[LiveCall]:
        server = self.phone.server
        if server is None:
            return []
        calls = []
        for record in server.registry.live():
            agent = self.phone.agent_for(record)
            calls.append(
                LiveCall(
                    call_id=record.call_id,
                    direction=record.direction,
                    caller=record.caller,
                    callee=record.callee,
                    agent=getattr(agent, "name", "") or "",
                    state="in-progress" if record.state == "streaming" else record.state,
                    started_at=record.started_at,
                )
            )
        return calls

    async def place_call(self, to: str, agent: str | None, first_message: str | None) -> str:
        server = self.phone.server
        if server is None or not server.accepting:
            raise NotAccepting("not accepting new calls")
        chosen = None
        if agent is not None:
            if agent not in self.agents:
                raise UnknownAgent(f"unknown agent {agent!r}")
            chosen = self.agents[agent]
        try:
            return await self.phone.call(to=to, agent=chosen, first_message=first_message or "")
        except SdkAtCapacity as exc:
            raise AtCapacity(str(exc)) from None
        except (CarrierError, ValueError, RuntimeError) as exc:
            raise RuntimeFailure(str(exc)) from None

    def _session(self, call_id: str) -> Any:
        session = self.phone.sessions.get(call_id)
        if session is None:
            raise CallNotFound(call_id)
        return session

    async def hangup(self, call_id: str, *, reason: str = "hangup") -> None:
        try:
            await self.phone.hangup(call_id, reason=reason)
        except KeyError:
            raise CallNotFound(call_id) from None
        except CarrierError as exc:
            raise RuntimeFailure(str(exc)) from None

    async def transfer(self, call_id: str, to: str) -> None:
        try:
            await self._session(call_id).controls.transfer(to)
        except CarrierError as exc:
            raise RuntimeFailure(str(exc)) from None

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        try:
            await self._session(call_id).controls.send_dtmf(digits)
        except ValueError as exc:
            raise RuntimeFailure(str(exc)) from None

    def stop_accepting(self) -> None:
        if self.phone.server is not None:
            self.phone.server.accepting = False

    async def reload_config(self, config: DaemonConfig) -> None:
        """All or nothing: an agent that cannot be built leaves the running config."""
        old = self.config
        self._load_agents(config)  # raises RuntimeFailure before changing anything
        self.config = config
        if self.phone.server is not None:
            self.phone.replace_default_agent(self._default())
        if config.server != old.server or config.carrier != old.carrier:
            log.warning("server and carrier changes take effect after a restart")

    async def aclose(self) -> None:
        await self.phone.disconnect()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 30)


class _NoStore:
    """Stands in before serving starts (or with persistence off): empty history."""

    def list_calls(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def get_call(self, call_id: str) -> None:
        return None

    def totals_by_day(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def rebuild(self) -> int:
        return 0


def create_runtime(config: DaemonConfig, bus: EventBus, credentials: Credentials) -> SdkRuntime:
    return SdkRuntime(config, bus, credentials)
