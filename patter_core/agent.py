"""``phone.agent(...)``: what an agent is, checked once, turned into a brain per call."""

from __future__ import annotations

import asyncio
import copy
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast, runtime_checkable

from patter_core.brain import Brain
from patter_core.guardrails import Guardrail
from patter_core.pricing import Pricing
from patter_core.session.config import DEFAULT_APOLOGY, AgentConfig, VadKind
from patter_core.session.interruption import InterruptionPolicy
from patter_core.tools import Tool

log = logging.getLogger(__name__)

# How long one provider may take to close its sockets at shutdown.
CLOSE_TIMEOUT_S = 5.0


@runtime_checkable
class BrainFactory(Protocol):
    """An engine configuration that makes a fresh brain for each call."""

    def create_brain(self) -> Brain: ...


@dataclass
class Agent:
    """One agent definition serves every call; each call gets its own brain."""

    engine: Any = None
    stt: Any = None
    llm: Any = None
    tts: Any = None
    system_prompt: str = ""
    first_message: str = ""
    voice: str = ""
    tools: list[Tool] = field(default_factory=list)
    guardrails: list[Guardrail] = field(default_factory=list)
    barge_in_threshold_ms: int = 300
    interruption: InterruptionPolicy | None = None
    vad: VadKind = "webrtc"
    name: str = "agent"
    apology: str = DEFAULT_APOLOGY  # spoken if the brain fails mid-call; "" for silence
    # This agent's own reply handler (pipeline mode, instead of llm=); without
    # one, the agent uses the on_message given to serve(), if any.
    on_message: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        pipeline = any(x is not None for x in (self.stt, self.llm, self.tts))
        if self.engine is not None and pipeline:
            raise ValueError("give either engine= or a pipeline (stt=, llm=, tts=), not both")
        self._check_handler()
        if self.engine is None and not pipeline:
            raise ValueError("an agent needs engine= (e.g. OpenAIRealtime()) or stt= and tts=")
        if pipeline and (self.stt is None or self.tts is None):
            raise ValueError("pipeline mode needs both stt= and tts= (and llm= or on_message)")
        if self.barge_in_threshold_ms < 0:
            raise ValueError("barge_in_threshold_ms must be 0 or more")
        if self.vad not in ("webrtc", "silero"):
            raise ValueError(f'vad must be "webrtc" or "silero", got {self.vad!r}')
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"tool names must be unique, got {names}")

    @property
    def is_pipeline(self) -> bool:
        return self.engine is None

    def policy(self) -> InterruptionPolicy:
        base = self.interruption or InterruptionPolicy()
        if self.interruption is None:
            base = replace(base, min_speech_ms=self.barge_in_threshold_ms)
        if getattr(self.engine, "interruptible", True) is False:
            base = replace(base, enabled=False)
        return base

    def session_config(
        self, *, pricing: Pricing, voicemail_message: str = "", first_message: str | None = None
    ) -> AgentConfig:
        return AgentConfig(
            system_prompt=self.system_prompt,
            first_message=self.first_message if first_message is None else first_message,
            voice=self.voice,
            tools=list(self.tools),
            guardrails=list(self.guardrails),
            policy=self.policy(),
            voicemail_message=voicemail_message,
            pricing=pricing,
            vad=self.vad,
            name=self.name,
            apology=self.apology,
        )

    def reply_handler(self, fallback: Callable[..., Any] | None) -> Callable[..., Any] | None:
        """The on_message this agent's calls use: its own, else serve()'s, and
        none at all for an agent that has an LLM or is an engine."""
        if not self.is_pipeline or self.llm is not None:
            return None
        return self.on_message or fallback

    def _check_handler(self) -> None:
        if self.on_message is not None and (self.llm is not None or not self.is_pipeline):
            raise ValueError("on_message= replaces llm= in pipeline mode: give one of them")

    def check_servable(self, fallback: Callable[..., Any] | None) -> None:
        """Refuse, before any call arrives, an agent that could not answer one."""
        self._check_handler()
        if self.is_pipeline and self.llm is None and self.reply_handler(fallback) is None:
            raise ValueError(
                f"agent {self.name!r} has stt= and tts= but nothing to reply with: "
                "give it llm=, or on_message= (here or in serve())"
            )

    def create_brain(self, on_message: Callable[..., Any] | None = None) -> Brain:
        """A fresh brain for one call; ``on_message`` is serve()'s handler, if any."""
        if not self.is_pipeline:
            if isinstance(self.engine, BrainFactory):
                return self.engine.create_brain()
            return cast(Brain, copy.copy(self.engine))
        pipeline = importlib.import_module("patter_core.pipeline")
        brain = pipeline.Pipeline(
            stt=self.stt, llm=self.llm, tts=self.tts, on_message=self.reply_handler(on_message)
        )
        return cast(Brain, brain)

    async def close_providers(self) -> None:
        """Close what this agent's STT, LLM and TTS keep open between calls (a
        TTS's shared socket and its reader task). Only once no call uses them."""
        for part in (self.stt, self.llm, self.tts):
            close = getattr(part, "close", None)
            if close is None:
                continue
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await close()
            except Exception as exc:
                log.warning("agent %r: closing %s failed: %s", self.name, part, type(exc).__name__)
