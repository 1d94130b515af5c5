"""Pipeline mode: a :class:`~patter_core.brain.Brain` made of STT → LLM → TTS.

The caller's turn ends when the STT says so (a final result flagged
``end_of_turn``, or final text followed by ``endpoint_silence_ms`` of quiet),
unless the session's VAD says the caller is still speaking. The reply streams:
LLM text is cut into sentences or clauses, each goes to TTS as soon as it is
complete, and audio goes out in order while later pieces are still being
written. Barge-in closes the LLM stream and every synthesis at once and keeps
in the history only what the caller heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
import typing
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from patter_core.audio.formats import AudioFormat
from patter_core.brain import (
    AgentAudio,
    AgentText,
    BrainContext,
    BrainFailure,
    BrainOutput,
    CallerText,
    ResponseDone,
    ToolRequest,
)
from patter_core.pipeline.segmenter import SentenceSegmenter
from patter_core.pipeline.speaker import Piece, Speaker, heard_texts
from patter_core.providers.base import (
    LLM,
    STT,
    TTS,
    LLMChunk,
    Message,
    ProviderError,
    STTStream,
    TextDelta,
    ToolCallPart,
    ToolCalls,
    Transcription,
    Usage,
)

log = logging.getLogger(__name__)

OnMessage = Callable[[Any], Awaitable[str | AsyncIterator[str] | None] | AsyncIterator[str]]
"""Caller text (or a dict with ``text``, call info and ``history``) in; reply text out."""

TextFilter = Callable[[str], str]


@dataclass(eq=False)
class _Reply:
    id: str
    started: float
    speaker: Speaker | None = None
    task: asyncio.Task[None] | None = None
    pieces: list[Piece] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    usage: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    tool_ids: list[str] = field(default_factory=list)
    cancelled: bool = False
    finished: bool = False


class Pipeline:
    def __init__(
        self,
        *,
        stt: STT,
        tts: TTS,
        llm: LLM | None = None,
        on_message: OnMessage | None = None,
        max_tool_rounds: int = 5,
        text_filter: TextFilter | None = None,
        endpoint_silence_ms: float = 500.0,
        min_piece_chars: int = 8,
        tool_timeout_s: float = 60.0,
    ) -> None:
        if llm is not None and on_message is not None:
            raise ValueError("pass either llm= or on_message=, not both")
        if llm is None and on_message is None:
            raise ValueError("pipeline mode needs llm= or on_message=")
        self.stt, self.tts, self.llm, self.on_message = stt, tts, llm, on_message
        self.max_tool_rounds = max_tool_rounds
        self.text_filter = text_filter
        self.endpoint_silence_s = endpoint_silence_ms / 1000.0
        self.min_piece_chars = min_piece_chars
        self.tool_timeout_s = tool_timeout_s
        self.history: list[Message] = []
        self._ctx: BrainContext | None = None
        self._stream: STTStream | None = None
        self._out: asyncio.Queue[BrainOutput | None] = asyncio.Queue()
        self._turn_q: asyncio.Queue[Transcription | bool] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reply: _Reply | None = None
        self._dead: set[str] = set()
        self._tool_waits: dict[str, asyncio.Future[Any]] = {}
        self._stt_billed = 0.0
        self._vad_end: float | None = None
        self._last_interim: float | None = None
        self._closed = False

    # --- Brain -------------------------------------------------------------------------

    @property
    def input_format(self) -> AudioFormat:
        return self.stt.input_format

    @property
    def output_format(self) -> AudioFormat:
        return self.tts.output_format

    async def start(self, ctx: BrainContext) -> None:
        self._ctx = ctx
        if ctx.system_prompt:
            self.history.append(Message("system", ctx.system_prompt))
        self._stream = await self.stt.open(ctx.call_id)
        self._spawn(self._read_stt(self._stream))
        self._spawn(self._turns())
        if ctx.first_message:
            await self.say(ctx.first_message)

    async def push_audio(self, payload: bytes) -> None:
        if self._stream is None or self._closed:
            return
        try:
            await self._stream.push_audio(payload)
        except ProviderError as exc:
            self._emit(BrainFailure("stt_error", str(exc), fatal=True))

    async def push_dtmf(self, digit: str) -> None:
        """Keypresses are the session's business (events, tools); the LLM never sees them."""

    def caller_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        """The session's VAD: while the caller talks, a turn never ends.

        ``ago_s``: the voice stopped that long before the VAD said so (its hangover).
        """
        if not speaking:
            self._vad_end = time.monotonic() - max(ago_s, 0.0)
        self._turn_q.put_nowait(speaking)

    async def outputs(self) -> AsyncIterator[BrainOutput]:
        while (item := await self._out.get()) is not None:
            if isinstance(item, AgentAudio | AgentText) and item.response_id in self._dead:
                continue
            yield item

    async def say(self, text: str) -> None:
        if self._closed:
            return
        await self._supersede()
        reply = self._new_reply()
        reply.task = asyncio.create_task(self._run(reply, self._say(reply, text)))

    async def interrupt(self, heard_ms: float) -> None:
        reply = self._reply
        if reply is None:
            return
        await self._stop(reply, heard_ms)

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None:
        fut = self._tool_waits.get(tool_call_id)
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Turns first, so no reply starts while the current one is being stopped.
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reply is not None:
            await self._stop(self._reply, None)
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.close()
        self._out.put_nowait(None)

    # --- caller turns --------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_stt(self, stream: STTStream) -> None:
        try:
            async for result in stream.results():
                self._turn_q.put_nowait(result)
        except ProviderError as exc:
            self._emit(BrainFailure("stt_error", str(exc), fatal=True))
            return
        if not self._closed:
            self._emit(BrainFailure("stt_closed", f"{self.stt.name}: stream ended", fatal=True))

    async def _turns(self) -> None:
        finals: list[str] = []
        interim = ""
        end_of_turn = False
        speaking = False
        asked_final = False
        while True:
            waiting = (finals or interim) and not speaking
            timeout = self.endpoint_silence_s if waiting else None
            try:
                item = await asyncio.wait_for(self._turn_q.get(), timeout)
            except TimeoutError:
                if interim and not asked_final and self._stream is not None:
                    # Quiet with only interim text: ask the STT to finalize, give it a window.
                    asked_final = True
                    with contextlib.suppress(ProviderError):
                        await self._stream.finalize()
                    continue
                await self._commit(" ".join([*finals, interim]).strip())
                finals, interim, end_of_turn, asked_final = [], "", False, False
                continue
            if isinstance(item, bool):
                speaking = item
            elif item.final:
                if item.text.strip():
                    finals.append(item.text.strip())
                interim = ""
                end_of_turn = end_of_turn or item.end_of_turn
            else:
                interim = item.text.strip()
                self._last_interim = time.monotonic()
                if interim:
                    self._emit(CallerText(" ".join([*finals, interim]), final=False))
            if end_of_turn and not speaking and not interim:
                await self._commit(" ".join(finals))
                finals, end_of_turn, asked_final = [], False, False

    async def _commit(self, text: str) -> None:
        if not text:
            return
        now = time.monotonic()
        self._emit(CallerText(text, final=True))
        await self._supersede()
        self.history.append(Message("user", text))
        reply = self._new_reply()
        reply.started = now
        speech_end = self._vad_end if self._vad_end is not None else self._last_interim
        if speech_end is not None:
            reply.timings["stt_final_ms"] = _ms(max(now - speech_end, 0.0))
        self._vad_end = self._last_interim = None
        if self._stream is not None:
            billed = self._stream.audio_seconds
            reply.usage["stt_seconds"] = max(billed - self._stt_billed, 0.0)
            self._stt_billed = billed
        body = self._llm_reply(reply) if self.llm is not None else self._callback(reply, text)
        reply.task = asyncio.create_task(self._run(reply, body))

    # --- replies -------------------------------------------------------------------------

    def _new_reply(self) -> _Reply:
        reply = _Reply(id=f"resp_{uuid.uuid4().hex[:12]}", started=time.monotonic())
        self._reply = reply
        return reply

    async def _supersede(self) -> None:
        """A new reply replaces a running one; what was produced stays in history."""
        if self._reply is not None and not self._reply.finished:
            await self._stop(self._reply, None)

    async def _run(self, reply: _Reply, body: Awaitable[None]) -> None:
        """Run a reply's body, then let its audio play out; the speaker ends with this task.

        If the body fails (the LLM, or a bug in ``on_message``), the failure is reported
        and the pieces already handed to TTS still play: whole sentences, then the end of
        the reply. On cancellation every synthesis stops.
        """
        try:
            try:
                await body
            except ProviderError as exc:
                self._emit(BrainFailure("llm_error", str(exc), fatal=False))
            except Exception as exc:
                log.exception("pipeline reply failed")
                self._emit(BrainFailure("pipeline_error", f"{type(exc).__name__}: {exc}", False))
            if reply.speaker is not None:
                await reply.speaker.finish()
        finally:
            if reply.speaker is not None:
                await reply.speaker.cancel()  # after finish() there is nothing left to stop
        self._finish(reply)

    def _finish(self, reply: _Reply, heard_ms: float | None = None) -> None:
        if reply.finished:
            return
        reply.finished = True
        self._settle_history(reply, heard_ms)
        if not reply.cancelled:
            spoken = " ".join(p.text for p in reply.pieces)
            self._emit(AgentText(spoken, final=True, response_id=reply.id))
        if reply.speaker is not None and reply.speaker.first_byte_ms is not None:
            reply.timings["tts_first_byte_ms"] = round(reply.speaker.first_byte_ms, 1)
        self._emit(ResponseDone(reply.id, usage=dict(reply.usage), timings=dict(reply.timings)))

    async def _stop(self, reply: _Reply, heard_ms: float | None) -> None:
        """Cancel the LLM, every synthesis and pending tool waits; cut history at ``heard_ms``."""
        if not reply.finished:
            reply.cancelled = True
            self._dead.add(reply.id)
        tasks: list[asyncio.Task[None]] = [reply.task] if reply.task is not None else []
        for task in tasks:
            task.cancel()
        for tool_id in reply.tool_ids:
            fut = self._tool_waits.pop(tool_id, None)
            if fut is not None and not fut.done():
                fut.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if reply.speaker is not None:
            await reply.speaker.cancel()
        if heard_ms is not None:
            self._dead.add(reply.id)  # audio already queued for the session is stale too
        if reply.finished:
            if heard_ms is not None:
                self._settle_history(reply, heard_ms)
        else:
            self._finish(reply, heard_ms)

    def _settle_history(self, reply: _Reply, heard_ms: float | None) -> None:
        """Assistant messages hold the spoken pieces, cut to what was heard."""
        if heard_ms is None:
            texts = [p.text for p in reply.pieces]
        else:
            texts = heard_texts(reply.pieces, heard_ms)
        by_message: dict[int, list[str]] = {}
        for piece, text in zip(reply.pieces, texts, strict=True):
            if text:
                by_message.setdefault(id(piece.message), []).append(text)
        answered = {m.tool_call_id for m in self.history if m.role == "tool"}
        for msg in reply.messages:
            msg.content = " ".join(by_message.get(id(msg), []))
            for call in msg.tool_calls:
                if call.id not in answered:
                    result = json.dumps({"error": "cancelled: the caller interrupted"})
                    self.history.append(
                        Message("tool", result, tool_call_id=call.id, name=call.name)
                    )
            if not msg.content and not msg.tool_calls:
                self.history = [m for m in self.history if m is not msg]

    # --- reply bodies -------------------------------------------------------------------

    async def _say(self, reply: _Reply, text: str) -> None:
        msg = self._assistant_message(reply)
        seg = SentenceSegmenter(min_chars=self.min_piece_chars)
        for piece in [*seg.push(text), seg.flush()]:
            self._speak(reply, piece, msg, filtered=False)

    async def _llm_reply(self, reply: _Reply) -> None:
        assert self.llm is not None
        tools = self._ctx.tools if self._ctx is not None else []
        for round_no in range(self.max_tool_rounds + 1):
            snapshot = list(self.history)
            msg = self._assistant_message(reply)
            calls = await self._llm_round(reply, snapshot, msg, tools)
            if not calls:
                return
            if round_no == self.max_tool_rounds:
                self._emit(
                    BrainFailure(
                        "tool_rounds_exceeded",
                        f"the model still wanted tools after {self.max_tool_rounds} rounds",
                        fatal=False,
                    )
                )
                return
            msg.tool_calls = list(calls)
            await self._run_tools(reply, calls)

    async def _llm_round(
        self, reply: _Reply, snapshot: list[Message], msg: Message, tools: Sequence[Any]
    ) -> list[ToolCallPart]:
        assert self.llm is not None
        seg = SentenceSegmenter(min_chars=self.min_piece_chars)
        calls: list[ToolCallPart] = []
        asked = time.monotonic()
        chunks: AsyncIterator[LLMChunk] = self.llm.stream(snapshot, tools)
        try:
            async for chunk in chunks:
                if isinstance(chunk, TextDelta):
                    if "llm_first_token_ms" not in reply.timings:
                        reply.timings["llm_first_token_ms"] = _ms(time.monotonic() - asked)
                    for piece in seg.push(chunk.text):
                        self._speak(reply, piece, msg)
                elif isinstance(chunk, ToolCalls):
                    calls.extend(chunk.calls)
                elif isinstance(chunk, Usage):
                    _add_usage(reply.usage, chunk)
        finally:
            await _aclose(chunks)
        self._speak(reply, seg.flush(), msg)
        return calls

    async def _run_tools(self, reply: _Reply, calls: list[ToolCallPart]) -> None:
        loop = asyncio.get_running_loop()
        waits: list[tuple[ToolCallPart, asyncio.Future[Any]]] = []
        for call in calls:
            try:
                args = json.loads(call.arguments or "{}")
            except json.JSONDecodeError:
                args = None
            if not isinstance(args, dict):
                self._tool_message(call, {"error": "arguments were not a valid JSON object"})
                continue
            fut: asyncio.Future[Any] = loop.create_future()
            self._tool_waits[call.id] = fut
            reply.tool_ids.append(call.id)
            waits.append((call, fut))
            self._emit(ToolRequest(call.id, call.name, args))
        for call, fut in waits:
            try:
                result = await asyncio.wait_for(fut, self.tool_timeout_s)
            except TimeoutError:
                result = {"error": f"no result within {self.tool_timeout_s:g}s"}
            finally:
                self._tool_waits.pop(call.id, None)
            self._tool_message(call, result)

    def _tool_message(self, call: ToolCallPart, result: Any) -> None:
        content = result if isinstance(result, str) else json.dumps(result, default=str)
        self.history.append(Message("tool", content, tool_call_id=call.id, name=call.name))

    async def _callback(self, reply: _Reply, text: str) -> None:
        assert self.on_message is not None
        msg = self._assistant_message(reply)
        arg: Any = text if _wants_text(self.on_message) else self._call_info(text)
        asked = time.monotonic()
        result: Any = self.on_message(arg)
        if inspect.isawaitable(result):
            result = await result
        seg = SentenceSegmenter(min_chars=self.min_piece_chars)
        if isinstance(result, str):
            reply.timings["llm_first_token_ms"] = _ms(time.monotonic() - asked)
            for piece in seg.push(result):
                self._speak(reply, piece, msg)
        elif result is not None and hasattr(result, "__aiter__"):
            try:
                async for part in result:
                    if "llm_first_token_ms" not in reply.timings:
                        reply.timings["llm_first_token_ms"] = _ms(time.monotonic() - asked)
                    for piece in seg.push(str(part)):
                        self._speak(reply, piece, msg)
            finally:
                await _aclose(result)
        elif result is not None:
            raise TypeError(f"on_message returned {type(result).__name__}, not str or iterator")
        self._speak(reply, seg.flush(), msg)

    def _call_info(self, text: str) -> dict[str, Any]:
        ctx = self._ctx
        return {
            "text": text,
            "call_id": ctx.call_id if ctx else "",
            "caller": ctx.caller if ctx else "",
            "callee": ctx.callee if ctx else "",
            "direction": ctx.direction if ctx else "",
            "history": [
                {"role": m.role, "content": m.content}
                for m in self.history
                if m.role in ("user", "assistant") and m.content
            ],
        }

    # --- speech out ---------------------------------------------------------------------

    def _assistant_message(self, reply: _Reply) -> Message:
        msg = Message("assistant")
        self.history.append(msg)
        reply.messages.append(msg)
        return msg

    def _speak(self, reply: _Reply, text: str, msg: Message, *, filtered: bool = True) -> None:
        if filtered and self.text_filter is not None and text:
            text = self.text_filter(text).strip()
        if not text or reply.cancelled:
            return
        if reply.speaker is None:
            reply.speaker = Speaker(
                self.tts,
                on_audio=lambda piece, chunk: self._on_audio(reply, chunk),
                on_error=lambda exc: self._emit(BrainFailure("tts_error", str(exc), False)),
            )
        lead = " " if reply.pieces else ""
        piece = Piece(text, msg)
        reply.pieces.append(piece)
        reply.usage["tts_characters"] = reply.usage.get("tts_characters", 0.0) + len(text)
        self._emit(AgentText(lead + text, final=False, response_id=reply.id))
        reply.speaker.add(piece)

    def _on_audio(self, reply: _Reply, chunk: bytes) -> None:
        if reply.cancelled:
            return
        if "first_audio_ms" not in reply.timings:
            reply.timings["first_audio_ms"] = _ms(time.monotonic() - reply.started)
        self._emit(AgentAudio(chunk, response_id=reply.id))

    def _emit(self, item: BrainOutput) -> None:
        if not self._closed:
            self._out.put_nowait(item)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def _add_usage(usage: dict[str, float], u: Usage) -> None:
    for key, value in (
        ("llm_input_tokens", u.input_tokens),
        ("llm_output_tokens", u.output_tokens),
        ("llm_cached_tokens", u.cached_tokens),
    ):
        usage[key] = usage.get(key, 0.0) + value


async def _aclose(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def _wants_text(fn: Callable[..., Any]) -> bool:
    """``on_message(text: str)`` gets the text; any other signature gets the dict."""
    try:
        params = list(inspect.signature(fn).parameters.values())
        hints = typing.get_type_hints(fn)
    except (TypeError, ValueError, NameError):
        return False
    return bool(params) and hints.get(params[0].name) is str
