"""OpenAI Realtime as a ``Brain``: speech to speech over one WebSocket.

The engine configures the provider session (prompt, voice, tools, input
transcription, server VAD), streams caller audio in and turns server events
into brain outputs. It keeps its own record of the conversation so that a
dropped socket (once per call) or the provider's session length cap can be
bridged by a fresh session with the conversation replayed.
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
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from patter_core.audio.formats import ALAW_8K, MULAW_8K, PCM16_24K, AudioFormat, Encoding
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
    ToolSpec,
)
from patter_core.engines.errors import (
    AUTH_FAILED,
    ENGINE_ERROR,
    PROVIDER_ERROR,
    RATE_LIMITED,
    EngineError,
    scrub,
)
from patter_core.engines.history import History
from patter_core.engines.wsconn import Idle, JsonSocket

log = logging.getLogger(__name__)

PROVIDER = "openai-realtime"
DEFAULT_URL = "wss://api.openai.com/v1/realtime"
SESSION_CAP_S = 30 * 60.0

# Error codes that only say a client request raced the server (cancel after the
# response ended, truncate of an item already gone); nothing is wrong.
_BENIGN_ERRORS = frozenset(
    {"response_cancel_not_active", "conversation_already_has_active_response"}
)

_STATE_EVENTS = frozenset(
    {
        "response.created",
        "response.done",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
    }
)


def audio_format_for(carrier: AudioFormat | None) -> AudioFormat:
    """The provider format that spares transcoding: G.711 when the carrier speaks it."""
    if carrier in (MULAW_8K, ALAW_8K):
        assert carrier is not None
        return carrier
    return PCM16_24K


def _ga_format(fmt: AudioFormat) -> dict[str, Any]:
    if fmt.encoding is Encoding.MULAW:
        return {"type": "audio/pcmu"}
    if fmt.encoding is Encoding.ALAW:
        return {"type": "audio/pcma"}
    return {"type": "audio/pcm", "rate": 24000}


def _beta_format(fmt: AudioFormat) -> str:
    return {Encoding.MULAW: "g711_ulaw", Encoding.ALAW: "g711_alaw"}.get(fmt.encoding, "pcm16")


def _tool(spec: ToolSpec) -> dict[str, Any]:
    """Realtime tools are flat, unlike Chat Completions' nested ``function``."""
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": spec.parameters,
    }


def usage_units(usage: dict[str, Any]) -> dict[str, float]:
    """``response.usage`` → cost units; cached input is reported apart from fresh input."""
    inp = usage.get("input_token_details") or {}
    out = usage.get("output_token_details") or {}
    cached = int(inp.get("cached_tokens") or 0)
    cached_details = inp.get("cached_tokens_details") or {}
    cached_audio = int(cached_details.get("audio_tokens") or 0)
    cached_text = int(cached_details.get("text_tokens") or (cached - cached_audio))
    text_in = int(inp.get("text_tokens") or 0)
    audio_in = int(inp.get("audio_tokens") or 0)
    return {
        "realtime_text_input_tokens": float(max(text_in - cached_text, 0)),
        "realtime_audio_input_tokens": float(max(audio_in - cached_audio, 0)),
        "realtime_cached_text_tokens": float(cached_text),
        "realtime_cached_audio_tokens": float(cached_audio),
        "realtime_text_output_tokens": float(int(out.get("text_tokens") or 0)),
        "realtime_audio_output_tokens": float(int(out.get("audio_tokens") or 0)),
    }


def classify_error(err: dict[str, Any]) -> tuple[str, bool] | None:
    """(code, fatal) for a provider error object, ``None`` when it is harmless."""
    code = str(err.get("code") or "")
    kind = str(err.get("type") or "")
    if code in _BENIGN_ERRORS:
        return None
    if code in ("invalid_api_key", "insufficient_quota") or kind == "authentication_error":
        return AUTH_FAILED, True
    if "rate_limit" in code or "rate_limit" in kind:
        return RATE_LIMITED, True
    if code == "session_expired":
        return ENGINE_ERROR, False
    return PROVIDER_ERROR, False


class OpenAIRealtime:
    """``Brain`` over the OpenAI Realtime API (GA shape by default, ``api="beta"`` for beta)."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "gpt-realtime",
        voice: str = "marin",
        base_url: str = DEFAULT_URL,
        api: Literal["ga", "beta"] = "ga",
        transcription_model: str = "gpt-4o-transcribe",
        turn_detection: dict[str, Any] | None = None,
        session_cap_s: float = SESSION_CAP_S,
        rollover_margin_s: float = 120.0,
        connect_timeout_s: float = 10.0,
        response_timeout_s: float = 20.0,
        heartbeat_s: float = 15.0,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise EngineError(
                PROVIDER, AUTH_FAILED, "no API key (pass api_key= or set OPENAI_API_KEY)"
            )
        self._key = key
        self.model = model
        self.voice = voice
        self.base_url = base_url
        self.api = api
        self.transcription_model = transcription_model
        # interrupt_response is off: the call session decides barge-in from what the
        # caller actually heard and then calls interrupt().
        self.turn_detection = turn_detection or {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
            "create_response": True,
            "interrupt_response": False,
        }
        self.session_cap_s = session_cap_s
        self.rollover_margin_s = min(rollover_margin_s, session_cap_s * 0.9)
        self.connect_timeout_s = connect_timeout_s
        self.response_timeout_s = response_timeout_s
        self.heartbeat_s = heartbeat_s

        self._fmt = PCM16_24K
        self._ctx: BrainContext | None = None
        self._sock: JsonSocket | None = None
        self._out: asyncio.Queue[BrainOutput | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._finished = False
        self.history = History()
        self._reconnects_left = 1
        self._session_opened = 0.0
        self._swap_lock = asyncio.Lock()
        self._state_changed = asyncio.Event()  # a reply or caller speech began or ended
        # per-response state
        self._active: str | None = None
        self._last_event = 0.0
        self._cut: set[str] = set()
        self._audio_item: dict[str, tuple[str, int]] = {}  # response_id → (item_id, content_index)
        self._audio_ms: dict[str, float] = {}  # item_id → ms of audio received
        self._last_audio_response = ""
        self._fn_names: dict[str, str] = {}  # call_id → name (beta .done lacks it)
        self._tools_waiting: set[str] = set()
        self._tools_answered = False
        self._tools_response_done = False
        self._caller_speaking = False
        self._caller_partial: dict[str, str] = {}
        self._pending_usage: dict[str, float] = {}
        self._speech_stopped_at: float | None = None
        self._response_started_at = 0.0
        self._first_audio_at: float | None = None
        # figures for benches and tests
        self.stats: dict[str, float] = {"reconnects": 0, "rollovers": 0}

    # --- Brain ---------------------------------------------------------------------

    def create_brain(self) -> OpenAIRealtime:
        """A fresh engine with this configuration: one agent serves many calls,
        and every call needs its own socket and conversation state."""
        return OpenAIRealtime(
            self._key,
            model=self.model,
            voice=self.voice,
            base_url=self.base_url,
            api=self.api,
            transcription_model=self.transcription_model,
            turn_detection=dict(self.turn_detection),
            session_cap_s=self.session_cap_s,
            rollover_margin_s=self.rollover_margin_s,
            connect_timeout_s=self.connect_timeout_s,
            response_timeout_s=self.response_timeout_s,
            heartbeat_s=self.heartbeat_s,
        )

    @property
    def input_format(self) -> AudioFormat:
        return self._fmt

    @property
    def output_format(self) -> AudioFormat:
        return self._fmt

    async def start(self, ctx: BrainContext) -> None:
        """Open and configure a provider session. Failures become a ``BrainFailure`` output."""
        self._ctx = ctx
        self._fmt = audio_format_for(ctx.carrier_format)
        t0 = time.monotonic()
        try:
            self._sock = await self._open_session(replay=False, attempts=2)
        except EngineError as exc:
            self._fail(exc.code, str(exc))
            return
        self.stats["connect_ms"] = (time.monotonic() - t0) * 1000.0
        self._tasks.append(asyncio.create_task(self._read(), name=f"{PROVIDER}-read"))
        self._tasks.append(asyncio.create_task(self._rollover(), name=f"{PROVIDER}-rollover"))

    async def outputs(self) -> AsyncIterator[BrainOutput]:
        while True:
            item = await self._out.get()
            if item is None:
                return
            yield item

    async def push_audio(self, payload: bytes) -> None:
        await self._send({"type": "input_audio_buffer.append", "audio": _b64(payload)})

    async def push_dtmf(self, digit: str) -> None:
        text = f"[The caller pressed the phone key {digit}]"
        self.history.user(text)
        await self._send({"type": "conversation.item.create", "item": _user_item(text)})

    def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        """The session's VAD; this brain does not use it."""

    async def say(self, text: str) -> None:
        instructions = (
            "Say exactly the following to the caller, word for word, and nothing else: "
            + json.dumps(text)
        )
        await self._send({"type": "response.create", "response": {"instructions": instructions}})

    async def interrupt(self, heard_ms: float) -> None:
        """Cancel the reply being played and truncate its audio at what the caller heard.

        With server VAD the model may already be answering the interruption by the
        time the session confirms it; that newer response is left running.
        """
        rid = self._last_audio_response or self._active
        if self._active is not None and self._active == rid:
            await self._send({"type": "response.cancel"})
        if not rid:
            return
        self._cut.add(rid)
        where = self._audio_item.get(rid)
        if where is None:
            return
        item_id, content_index = where
        total = self._audio_ms.get(item_id, 0.0)
        end_ms = int(max(0.0, min(heard_ms, total)))
        await self._send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": content_index,
                "audio_end_ms": end_ms,
            }
        )
        if total > 0:
            self.history.cut_assistant(item_id, end_ms / total)

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None:
        output = result if isinstance(result, str) else json.dumps(result, default=str)
        self.history.function_output(tool_call_id, output)
        self._tools_waiting.discard(tool_call_id)
        self._tools_answered = True
        await self._send(
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": tool_call_id, "output": output},
            }
        )
        await self._continue_after_tools()

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._sock is not None:
            await self._sock.close()
            self._sock = None
        self._finish()

    # --- provider session ------------------------------------------------------------

    def _url(self) -> str:
        sep = "&" if urlsplit(self.base_url).query else "?"
        return f"{self.base_url}{sep}{urlencode({'model': self.model})}"

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._key}"}
        if self.api == "beta":
            headers["OpenAI-Beta"] = "realtime=v1"
        return headers

    def session_config(self) -> dict[str, Any]:
        ctx = self._ctx
        assert ctx is not None
        voice = ctx.voice or self.voice
        tools = [_tool(t) for t in ctx.tools]
        if self.api == "beta":
            fmt = _beta_format(self._fmt)
            return {
                "instructions": ctx.system_prompt,
                "voice": voice,
                "modalities": ["text", "audio"],
                "input_audio_format": fmt,
                "output_audio_format": fmt,
                "input_audio_transcription": {"model": self.transcription_model},
                "turn_detection": self.turn_detection,
                "tools": tools,
                "tool_choice": "auto",
            }
        fmt_ga = _ga_format(self._fmt)
        return {
            "type": "realtime",
            "model": self.model,
            "instructions": ctx.system_prompt,
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": fmt_ga,
                    "transcription": {"model": self.transcription_model},
                    "turn_detection": self.turn_detection,
                },
                "output": {"format": fmt_ga, "voice": voice},
            },
            "tools": tools,
            "tool_choice": "auto",
        }

    async def _open_session(self, *, replay: bool, attempts: int = 1) -> JsonSocket:
        """Connect, configure, wait for ``session.updated``, then replay the conversation."""
        last: EngineError | None = None
        for attempt in range(attempts):
            try:
                return await self._open_once(replay)
            except EngineError as exc:
                last = exc
                if exc.code == AUTH_FAILED or attempt + 1 >= attempts:
                    break
                log.info("%s: connect attempt failed (%s), retrying", PROVIDER, exc)
        assert last is not None
        raise last

    async def _open_once(self, replay: bool) -> JsonSocket:
        sock = await JsonSocket.connect(
            PROVIDER,
            self._url(),
            headers=self._headers(),
            connect_s=self.connect_timeout_s,
            heartbeat=self.heartbeat_s,
        )
        try:
            await sock.send({"type": "session.update", "session": self.session_config()})
            deadline = time.monotonic() + self.connect_timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Idle
                msg = await sock.receive(remaining)
                kind = msg.get("type")
                if kind == "session.updated":
                    break
                if kind == "error":
                    err = msg.get("error") or {}
                    verdict = classify_error(err)
                    if verdict is not None and verdict[0] != PROVIDER_ERROR:
                        raise EngineError(PROVIDER, verdict[0], self._error_text(err))
                    raise EngineError(
                        PROVIDER, ENGINE_ERROR, f"session refused: {self._error_text(err)}"
                    )
            if replay:
                for item in self.history.openai_items(ga=self.api == "ga"):
                    await sock.send({"type": "conversation.item.create", "item": item})
        except Idle:
            await sock.close()
            raise EngineError(
                PROVIDER, ENGINE_ERROR, "no session.updated before the timeout", retryable=True
            ) from None
        except BaseException:
            await sock.close()
            raise
        self._session_opened = time.monotonic()
        return sock

    def _error_text(self, err: dict[str, Any]) -> str:
        code = err.get("code") or err.get("type") or "error"
        message = str(err.get("message") or "")[:300]
        return scrub(f"{code}: {message}", self._key)

    # --- reading ---------------------------------------------------------------------

    async def _read(self) -> None:
        while not self._closed:
            sock = self._sock
            if sock is None:
                return
            wait_s = self.response_timeout_s if self._active is not None else None
            try:
                msg = await sock.receive(wait_s)
            except Idle:
                stalled = sock is self._sock and self._active is not None
                if stalled and not await self._recover("the response stalled"):
                    return
                continue
            except EngineError as exc:
                if sock is not self._sock or self._closed:
                    continue
                if not await self._recover(str(exc)):
                    return
                continue
            if sock is not self._sock:
                continue
            try:
                await self._handle(msg)
            except EngineError as exc:
                if exc.code == ENGINE_ERROR and not await self._recover(str(exc)):
                    return
                if exc.code != ENGINE_ERROR:
                    self._fail(exc.code, str(exc))
                    return
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("%s: ignoring malformed %r event: %s", PROVIDER, msg.get("type"), exc)

    async def _handle(self, msg: dict[str, Any]) -> None:
        kind = str(msg.get("type") or "")
        if kind in _STATE_EVENTS:
            self._state_changed.set()
        now = time.monotonic()
        if kind == "response.created":
            self._active = str((msg.get("response") or {}).get("id") or "")
            self._response_started_at = now
            self._first_audio_at = None
            self._tools_answered = False
            self._tools_response_done = False
        elif kind in ("response.output_audio.delta", "response.audio.delta"):
            self._on_audio(msg, now)
        elif kind in (
            "response.output_audio_transcript.delta",
            "response.audio_transcript.delta",
            "response.output_text.delta",
            "response.text.delta",
        ):
            rid = str(msg.get("response_id") or "")
            if rid not in self._cut and msg.get("delta"):
                self._emit(AgentText(str(msg["delta"]), final=False, response_id=rid))
        elif kind in (
            "response.output_audio_transcript.done",
            "response.audio_transcript.done",
            "response.output_text.done",
            "response.text.done",
        ):
            rid = str(msg.get("response_id") or "")
            text = str(msg.get("transcript") or msg.get("text") or "")
            self.history.assistant(text, str(msg.get("item_id") or ""))
            if rid not in self._cut:
                self._emit(AgentText(text, final=True, response_id=rid))
        elif kind == "conversation.item.input_audio_transcription.delta":
            item = str(msg.get("item_id") or "")
            self._caller_partial[item] = self._caller_partial.get(item, "") + str(
                msg.get("delta") or ""
            )
            self._emit(CallerText(self._caller_partial[item], final=False))
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._caller_partial.pop(str(msg.get("item_id") or ""), None)
            text = str(msg.get("transcript") or "")
            self.history.user(text)
            self._emit(CallerText(text, final=True))
            self._add_transcription_usage(msg.get("usage") or {})
        elif kind == "input_audio_buffer.speech_started":
            self._caller_speaking = True
            self._emit(CallerSpeech(speaking=True))
        elif kind == "input_audio_buffer.speech_stopped":
            self._caller_speaking = False
            self._speech_stopped_at = now
            self._emit(CallerSpeech(speaking=False))
        elif kind == "response.output_item.added":
            added: dict[str, Any] = msg.get("item") or {}
            if added.get("type") == "function_call":
                self._fn_names[str(added.get("call_id"))] = str(added.get("name") or "")
        elif kind == "response.function_call_arguments.done":
            self._on_function_call(msg)
        elif kind == "response.done":
            await self._on_response_done(msg.get("response") or {}, now)
        elif kind == "error":
            self._on_error(msg.get("error") or {})

    def _on_audio(self, msg: dict[str, Any], now: float) -> None:
        rid = str(msg.get("response_id") or "")
        if rid in self._cut:
            return
        try:
            audio = base64.b64decode(str(msg.get("delta") or ""), validate=True)
        except (binascii.Error, ValueError):
            log.warning("%s: dropped an audio delta that was not base64", PROVIDER)
            return
        if not audio:
            return
        item_id = str(msg.get("item_id") or "")
        self._audio_item.setdefault(rid, (item_id, int(msg.get("content_index") or 0)))
        self._audio_ms[item_id] = self._audio_ms.get(item_id, 0.0) + len(audio) / (
            self._fmt.bytes_for_ms(1000) / 1000.0
        )
        self._last_audio_response = rid
        if self._first_audio_at is None:
            self._first_audio_at = now
        self._emit(AgentAudio(audio, response_id=rid))

    def _on_function_call(self, msg: dict[str, Any]) -> None:
        call_id = str(msg.get("call_id") or "")
        name = str(msg.get("name") or self._fn_names.get(call_id, ""))
        raw = str(msg.get("arguments") or "")
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError:
            parsed = None
        arguments: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        if parsed is not None and not isinstance(parsed, dict):
            log.warning("%s: tool %s arguments were not an object", PROVIDER, name)
        self.history.function_call(call_id, name, raw or "{}")
        self._tools_waiting.add(call_id)
        self._emit(ToolRequest(tool_call_id=call_id, name=name, arguments=arguments))

    async def _on_response_done(self, resp: dict[str, Any], now: float) -> None:
        rid = str(resp.get("id") or self._active or "")
        status = str(resp.get("status") or "")
        if status == "failed":
            err = (resp.get("status_details") or {}).get("error") or {}
            verdict = classify_error(err)
            if verdict is not None and verdict[1]:
                raise EngineError(PROVIDER, verdict[0], self._error_text(err))
            self._emit(BrainFailure(PROVIDER_ERROR, self._error_text(err), fatal=False))
        usage = usage_units(resp.get("usage") or {})
        for k, v in self._pending_usage.items():
            usage[k] = usage.get(k, 0.0) + v
        self._pending_usage.clear()
        timings: dict[str, float] = {}
        if self._first_audio_at is not None:
            timings["engine_first_audio_ms"] = (
                self._first_audio_at - self._response_started_at
            ) * 1000
            if self._speech_stopped_at is not None:
                timings["engine_speech_end_to_audio_ms"] = (
                    self._first_audio_at - self._speech_stopped_at
                ) * 1000
        self._speech_stopped_at = None
        self._active = None
        self._emit(ResponseDone(response_id=rid, usage=usage, timings=timings))
        self._tools_response_done = True
        await self._continue_after_tools()

    async def _continue_after_tools(self) -> None:
        """Ask for the next reply once every tool call of the last one has its output."""
        if self._tools_answered and self._tools_response_done and not self._tools_waiting:
            self._tools_answered = False
            await self._send({"type": "response.create"})

    def _add_transcription_usage(self, usage: dict[str, Any]) -> None:
        if usage.get("type") == "duration":
            seconds = float(usage.get("seconds") or 0)
            self._pending_usage["stt_seconds"] = (
                self._pending_usage.get("stt_seconds", 0.0) + seconds
            )
        elif usage.get("type") == "tokens":
            for key, field in (
                ("realtime_transcription_input_tokens", "input_tokens"),
                ("realtime_transcription_output_tokens", "output_tokens"),
            ):
                count = float(usage.get(field) or 0)
                self._pending_usage[key] = self._pending_usage.get(key, 0.0) + count

    def _on_error(self, err: dict[str, Any]) -> None:
        verdict = classify_error(err)
        if verdict is None:
            log.debug("%s: harmless error event %s", PROVIDER, err.get("code"))
            return
        code, fatal = verdict
        text = self._error_text(err)
        if code == ENGINE_ERROR:
            raise EngineError(PROVIDER, ENGINE_ERROR, text, retryable=True)
        if fatal:
            raise EngineError(PROVIDER, code, text)
        log.warning("%s: provider error %s", PROVIDER, text)
        self._emit(BrainFailure(code, text, fatal=False))

    # --- recovery and rollover ------------------------------------------------------

    async def _recover(self, reason: str) -> bool:
        """The socket died: reconnect once with the conversation replayed, else fail."""
        if self._closed:
            return False
        async with self._swap_lock:
            cut = self._active
            self._active = None
            self._caller_speaking = False
            if cut:
                self._cut.add(cut)
                self._emit(ResponseDone(response_id=cut))
            if self._reconnects_left <= 0:
                self._fail(ENGINE_ERROR, f"{PROVIDER}: connection lost: {reason}")
                return False
            self._reconnects_left -= 1
            log.warning("%s: connection lost (%s); reconnecting once", PROVIDER, reason)
            try:
                new = await self._open_session(replay=True)
            except EngineError as exc:
                code = exc.code if exc.code != PROVIDER_ERROR else ENGINE_ERROR
                self._fail(code, f"reconnect failed: {exc}")
                return False
            old, self._sock = self._sock, new
            self.stats["reconnects"] += 1
            if old is not None:
                await old.close()
            self._tools_answered = False
            if (cut or self.history.needs_reply()) and not self._tools_waiting:
                await self._send({"type": "response.create"})
            return True

    def _idle(self) -> bool:
        return self._active is None and not self._caller_speaking and not self._tools_waiting

    async def _rollover(self) -> None:
        """Replace the provider session before its cap, at a quiet moment if one comes."""
        while not self._closed and not self._finished:
            due = self._session_opened + self.session_cap_s - self.rollover_margin_s
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
            if (
                time.monotonic()
                < self._session_opened + self.session_cap_s - self.rollover_margin_s
            ):
                continue  # a reconnect opened a fresh session meanwhile
            force_at = time.monotonic() + self.rollover_margin_s / 2
            while not self._idle() and (left := force_at - time.monotonic()) > 0:
                self._state_changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._state_changed.wait(), left)
            async with self._swap_lock:
                try:
                    new = await self._open_session(replay=True, attempts=2)
                except EngineError as exc:
                    log.warning("%s: rollover failed (%s); keeping the old session", PROVIDER, exc)
                    retry = True
                else:
                    retry = False
                    cut = self._active
                    if cut:  # forced mid-reply: the reply is lost, so ask again on the new session
                        self._active = None
                        self._cut.add(cut)
                        self._emit(ResponseDone(response_id=cut))
                    old, self._sock = self._sock, new
                    self.stats["rollovers"] += 1
                    if old is not None:
                        await old.close()
                    if cut and not self._tools_waiting:
                        await self._send({"type": "response.create"})
            if retry:
                await asyncio.sleep(min(5.0, self.rollover_margin_s / 4))
                continue
            log.info("%s: rolled over to a new provider session", PROVIDER)

    # --- plumbing --------------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        """Send on the live socket; a failure here is noticed and handled by the reader."""
        sock = self._sock
        if sock is None or self._closed:
            return
        try:
            await sock.send(message)
        except EngineError as exc:
            log.info("%s: send of %s failed: %s", PROVIDER, message.get("type"), exc)

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


def _b64(payload: bytes) -> str:
    return base64.b64encode(payload).decode("ascii")


def _user_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
