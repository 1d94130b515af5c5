"""ElevenLabs Conversational AI (Agents) as a ``Brain``.

The agent (its LLM, voice, turn taking and client tools) lives at ElevenLabs;
this engine starts a conversation with per-call overrides, streams caller
audio in the agent's input format and turns server events into brain
outputs. ConvAI has no reply ids or reply-done event, so a reply is opened by
its first audio or text and closed by the next caller turn, an interruption
or ``reply_idle_s`` without audio. Cost is by conversation time: each
``ResponseDone`` carries the seconds since the previous one.

The greeting belongs to Patter: the session speaks ``Agent.first_message``
through :meth:`ElevenLabsConvAI.say`, so the agent's own first message is
overridden (with the context's, or with nothing) to keep the caller from being
greeted twice. ``agent_greeting=True`` keeps the greeting configured at
ElevenLabs instead (then leave ``Agent.first_message`` empty). Either way the
agent must allow the ``first_message`` override in its security settings.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp

from patter_core.audio.formats import MULAW_8K, PCM16_16K, AudioFormat, Encoding
from patter_core.brain import (
    AgentAudio,
    AgentText,
    BrainContext,
    BrainFailure,
    BrainOutput,
    CallerSpeech,
    CallerText,
    ResponseDone,
    ToolRequest,
)
from patter_core.engines.errors import AUTH_FAILED, ENGINE_ERROR, EngineError, scrub
from patter_core.engines.history import History
from patter_core.engines.wsconn import Idle, JsonSocket, handshake_error

log = logging.getLogger(__name__)

PROVIDER = "elevenlabs-convai"
DEFAULT_URL = "wss://api.elevenlabs.io/v1/convai/conversation"


def parse_format(name: str) -> AudioFormat | None:
    """``ulaw_8000`` / ``pcm_16000`` … → AudioFormat (None for a name we do not know)."""
    kind, _, rate = name.partition("_")
    if not rate.isdigit():
        return None
    if kind == "ulaw":
        return AudioFormat(Encoding.MULAW, int(rate))
    if kind == "pcm":
        return AudioFormat(Encoding.PCM16, int(rate))
    return None


class ElevenLabsConvAI:
    """``Brain`` over an ElevenLabs agent. Private agents connect through a signed URL."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        agent_id: str | None = None,
        base_url: str = DEFAULT_URL,
        voice_id: str = "",
        language: str = "",
        dynamic_variables: dict[str, str | int | float | bool] | None = None,
        connect_timeout_s: float = 10.0,
        reply_idle_s: float = 1.0,
        heartbeat_s: float = 15.0,
        agent_greeting: bool = False,
    ) -> None:
        self._key = api_key if api_key is not None else os.environ.get("ELEVENLABS_API_KEY", "")
        agent = agent_id if agent_id is not None else os.environ.get("ELEVENLABS_AGENT_ID", "")
        if not agent:
            raise EngineError(
                PROVIDER, ENGINE_ERROR, "no agent id (pass agent_id= or set ELEVENLABS_AGENT_ID)"
            )
        self.agent_id = agent
        self.base_url = base_url
        self.voice_id = voice_id
        self.language = language
        self.dynamic_variables = dict(dynamic_variables or {})
        self.connect_timeout_s = connect_timeout_s
        self.reply_idle_s = reply_idle_s
        self.heartbeat_s = heartbeat_s
        self.agent_greeting = agent_greeting

        self._in_fmt = PCM16_16K
        self._out_fmt = PCM16_16K
        self._ctx: BrainContext | None = None
        self._sock: JsonSocket | None = None
        self._out: asyncio.Queue[BrainOutput | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._finished = False
        self.history = History()
        self._reconnects_left = 1
        self.conversation_id = ""
        self._reply: str | None = None  # open reply id
        self._reply_text = False
        self._replies = 0
        self._cut: set[str] = set()
        self._last_reply = ""
        self._last_interrupt = -1
        self._billed_at = 0.0
        self._reply_active = 0.0
        self.stats: dict[str, float] = {"reconnects": 0}

    # --- Brain ---------------------------------------------------------------------

    def create_brain(self) -> ElevenLabsConvAI:
        """A fresh engine with this configuration, for one call (state is per call)."""
        return ElevenLabsConvAI(
            self._key,
            agent_id=self.agent_id,
            base_url=self.base_url,
            voice_id=self.voice_id,
            language=self.language,
            dynamic_variables=dict(self.dynamic_variables),
            connect_timeout_s=self.connect_timeout_s,
            reply_idle_s=self.reply_idle_s,
            heartbeat_s=self.heartbeat_s,
            agent_greeting=self.agent_greeting,
        )

    @property
    def input_format(self) -> AudioFormat:
        """The agent's ``user_input_audio_format`` (known after ``start``)."""
        return self._in_fmt

    @property
    def output_format(self) -> AudioFormat:
        return self._out_fmt

    async def start(self, ctx: BrainContext) -> None:
        self._ctx = ctx
        guess = MULAW_8K if ctx.carrier_format == MULAW_8K else PCM16_16K
        self._in_fmt = self._out_fmt = guess
        t0 = time.monotonic()
        try:
            self._sock = await self._open(first=True)
        except EngineError as exc:
            self._fail(exc.code, str(exc))
            return
        self.stats["connect_ms"] = (time.monotonic() - t0) * 1000.0
        self._billed_at = time.monotonic()
        self._task = asyncio.create_task(self._read(), name=f"{PROVIDER}-read")

    async def outputs(self) -> AsyncIterator[BrainOutput]:
        while True:
            item = await self._out.get()
            if item is None:
                return
            yield item

    async def push_audio(self, payload: bytes) -> None:
        # user_audio_chunk frames carry no "type" key.
        await self._send({"user_audio_chunk": base64.b64encode(payload).decode("ascii")})

    async def push_dtmf(self, digit: str) -> None:
        text = f"[The caller pressed the phone key {digit}]"
        self.history.user(text)
        await self._send({"type": "user_message", "text": text})

    def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        """The session's VAD; this brain does not use it."""

    async def say(self, text: str) -> None:
        """ConvAI has no "speak this" message; the agent is asked to say it verbatim."""
        await self._send(
            {
                "type": "user_message",
                "text": "(Instruction from the operator, not the caller: say exactly this to the "
                f"caller, word for word, and nothing else: {json.dumps(text)})",
            }
        )

    async def interrupt(self, heard_ms: float) -> None:
        """The agent handles barge-in server-side; locally the rest of the reply is dropped."""
        rid = self._reply or self._last_reply
        if rid:
            self._cut.add(rid)
        self._close_reply()

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None:
        is_error = isinstance(result, dict) and set(result) == {"error"}
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        self.history.function_output(tool_call_id, text)
        await self._send(
            {
                "type": "client_tool_result",
                "tool_call_id": tool_call_id,
                "result": text,
                "is_error": is_error,
            }
        )

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._sock is not None:
            await self._sock.close()
            self._sock = None
        self._finish()

    # --- connection ------------------------------------------------------------------

    def _signed_url_endpoint(self) -> str:
        parts = urlsplit(self.base_url)
        scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/") + "/get-signed-url"
        return urlunsplit((scheme, parts.netloc, path, urlencode({"agent_id": self.agent_id}), ""))

    async def _ws_url(self) -> str:
        """Public agents: the endpoint itself. With an API key: a signed URL for this call."""
        if not self._key:
            sep = "&" if urlsplit(self.base_url).query else "?"
            return f"{self.base_url}{sep}{urlencode({'agent_id': self.agent_id})}"
        timeout = aiohttp.ClientTimeout(total=self.connect_timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(self._signed_url_endpoint(), headers={"xi-api-key": self._key}) as resp,
            ):
                if resp.status != 200:
                    raise handshake_error(PROVIDER, resp.status)
                body = await resp.json(content_type=None)
        except TimeoutError:
            raise EngineError(
                PROVIDER, ENGINE_ERROR, "signed URL request timed out", retryable=True
            ) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise EngineError(
                PROVIDER, ENGINE_ERROR, f"signed URL request failed: {type(exc).__name__}"
            ) from None
        url = body.get("signed_url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise EngineError(PROVIDER, ENGINE_ERROR, "signed URL response had no signed_url")
        return url

    def initiation(self, *, first: bool) -> dict[str, Any]:
        ctx = self._ctx
        assert ctx is not None
        agent: dict[str, Any] = {}
        if ctx.system_prompt:
            agent["prompt"] = {"prompt": ctx.system_prompt}
        if not first:
            agent["first_message"] = ""  # a resumed call must not be greeted again
        elif ctx.first_message or not self.agent_greeting:
            # Empty when the session greets through say(): one greeting, not two.
            agent["first_message"] = ctx.first_message
        if self.language:
            agent["language"] = self.language
        override: dict[str, Any] = {}
        if agent:
            override["agent"] = agent
        voice = ctx.voice or self.voice_id
        if voice:
            override["tts"] = {"voice_id": voice}
        message: dict[str, Any] = {
            "type": "conversation_initiation_client_data",
            "conversation_config_override": override,
        }
        if self.dynamic_variables:
            message["dynamic_variables"] = self.dynamic_variables
        return message

    async def _open(self, *, first: bool) -> JsonSocket:
        url = await self._ws_url()
        sock = await JsonSocket.connect(
            PROVIDER, url, connect_s=self.connect_timeout_s, heartbeat=self.heartbeat_s
        )
        try:
            await sock.send(self.initiation(first=first))
            deadline = time.monotonic() + self.connect_timeout_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Idle
                msg = await sock.receive(left)
                if msg.get("type") == "conversation_initiation_metadata":
                    self._on_metadata(msg.get("conversation_initiation_metadata_event") or {})
                    break
                if msg.get("type") == "ping":
                    await self._pong(sock, msg)
            if not first and self.history.entries:
                context = (
                    "The call continues after a connection problem; do not greet the caller "
                    "again. Conversation so far:\n" + self.history.as_text()
                )
                await sock.send({"type": "contextual_update", "text": context})
        except Idle:
            await sock.close()
            raise EngineError(
                PROVIDER, ENGINE_ERROR, "no conversation metadata before the timeout"
            ) from None
        except BaseException:
            await sock.close()
            raise
        return sock

    def _on_metadata(self, meta: dict[str, Any]) -> None:
        self.conversation_id = str(meta.get("conversation_id") or "")
        for key, attr in (
            ("user_input_audio_format", "_in_fmt"),
            ("agent_output_audio_format", "_out_fmt"),
        ):
            name = str(meta.get(key) or "")
            fmt = parse_format(name)
            if fmt is not None:
                setattr(self, attr, fmt)
            elif name:
                log.warning("%s: unknown audio format %r; keeping %s", PROVIDER, name, attr)

    # --- reading ---------------------------------------------------------------------

    async def _read(self) -> None:
        while not self._closed:
            sock = self._sock
            if sock is None:
                return
            wait_s = None
            if self._reply is not None:  # pings keep coming, so measure from the reply's last audio
                wait_s = max(self._reply_active + self.reply_idle_s - time.monotonic(), 0.0)
            try:
                msg = await sock.receive(wait_s)
            except Idle:
                self._close_reply()
                continue
            except EngineError as exc:
                if self._closed:
                    return
                if not await self._recover(str(exc)):
                    return
                continue
            try:
                await self._handle(sock, msg)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("%s: ignoring malformed %r event: %s", PROVIDER, msg.get("type"), exc)

    async def _handle(self, sock: JsonSocket, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "ping":
            await self._pong(sock, msg)
        elif kind == "audio":
            self._on_audio(msg.get("audio_event") or {})
        elif kind == "agent_response":
            text = str((msg.get("agent_response_event") or {}).get("agent_response") or "")
            if self._reply is not None and self._reply_text:
                self._close_reply()
            rid = self._open_reply()
            self._reply_text = True
            self.history.assistant(text, item_id=rid)
            if rid not in self._cut:
                self._emit(AgentText(text, final=True, response_id=rid))
        elif kind == "agent_response_correction":
            event = msg.get("agent_response_correction_event") or {}
            corrected = str(event.get("corrected_agent_response") or "")
            rid = self._last_reply
            cut = self._reply is not None and self._reply in self._cut
            for entry in reversed(self.history.entries):
                if entry.kind == "assistant":
                    entry.text = corrected
                    break
            if rid:
                self._emit(AgentText(corrected, final=True, response_id=rid))
            if cut:
                # The interrupted reply is closed only now, so its text is what was said.
                self._close_reply()
        elif kind == "user_transcript":
            self._close_reply()
            event = msg.get("user_transcription_event") or {}
            text = str(event.get("user_transcript") or "")
            self.history.user(text)
            self._emit(CallerText(text, final=True))
        elif kind == "interruption":
            event = msg.get("interruption_event") or {}
            self._last_interrupt = int(event.get("event_id") or 0)
            # The reply stays open until its correction (or the idle timer) closes it.
            if self._reply is not None:
                self._cut.add(self._reply)
            self._emit(CallerSpeech(speaking=True, interrupted=self._reply is not None))
        elif kind == "client_tool_call":
            call = msg.get("client_tool_call") or {}
            params = call.get("parameters")
            arguments: dict[str, Any] = params if isinstance(params, dict) else {}
            call_id = str(call.get("tool_call_id") or "")
            name = str(call.get("tool_name") or "")
            self.history.function_call(call_id, name, json.dumps(arguments))
            self._emit(ToolRequest(tool_call_id=call_id, name=name, arguments=arguments))

    def _on_audio(self, event: dict[str, Any]) -> None:
        event_id = int(event.get("event_id") or 0)
        if event_id and event_id <= self._last_interrupt:
            return  # audio the agent produced before the caller cut in
        try:
            audio = base64.b64decode(str(event.get("audio_base_64") or ""), validate=True)
        except (binascii.Error, ValueError):
            log.warning("%s: dropped an audio event that was not base64", PROVIDER)
            return
        if not audio:
            return
        rid = self._open_reply()
        if rid not in self._cut:
            self._emit(AgentAudio(audio, response_id=rid))

    def _open_reply(self) -> str:
        self._reply_active = time.monotonic()
        if self._reply is None:
            self._replies += 1
            self._reply = f"{self.conversation_id or 'conv'}-{self._replies}"
            self._reply_text = False
            self._last_reply = self._reply
        return self._reply

    def _close_reply(self) -> None:
        if self._reply is None:
            return
        rid, self._reply = self._reply, None
        now = time.monotonic()
        seconds, self._billed_at = now - self._billed_at, now
        self._emit(ResponseDone(response_id=rid, usage={"convai_seconds": round(seconds, 3)}))

    async def _pong(self, sock: JsonSocket, msg: dict[str, Any]) -> None:
        event_id = (msg.get("ping_event") or {}).get("event_id")
        with contextlib.suppress(EngineError):
            await sock.send({"type": "pong", "event_id": event_id})

    async def _recover(self, reason: str) -> bool:
        if self._reply is not None:
            self._cut.add(self._reply)
        self._close_reply()
        if self._reconnects_left <= 0:
            self._fail(ENGINE_ERROR, f"{PROVIDER}: connection lost: {reason}")
            return False
        self._reconnects_left -= 1
        log.warning("%s: connection lost (%s); reconnecting once", PROVIDER, reason)
        try:
            new = await self._open(first=False)
        except EngineError as exc:
            code = AUTH_FAILED if exc.code == AUTH_FAILED else ENGINE_ERROR
            self._fail(code, f"reconnect failed: {exc}")
            return False
        old, self._sock = self._sock, new
        self.stats["reconnects"] += 1
        if old is not None:
            await old.close()
        return True

    # --- plumbing --------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        sock = self._sock
        if sock is None or self._closed:
            return
        try:
            await sock.send(message)
        except EngineError as exc:
            log.info("%s: send failed: %s", PROVIDER, exc)

    def _emit(self, out: BrainOutput) -> None:
        if not self._finished:
            self._out.put_nowait(out)

    def _fail(self, code: str, message: str) -> None:
        self._emit(BrainFailure(code=code, message=scrub(message, self._key), fatal=True))
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._out.put_nowait(None)
