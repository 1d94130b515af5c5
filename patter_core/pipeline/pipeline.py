"""``Pipeline``: a brain made of three providers, STT → LLM (or ``on_message``) → TTS.

Everything streams: the caller's turn ends on the STT's endpointing, the
reply is cut into sentences as the model writes it, and each sentence is
synthesised as soon as it is complete, so the caller hears the first words
while the rest is still being written. Barge-in cancels the model and every
synthesis in flight at once, and the history keeps only what was heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
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
from patter_core.pipeline.segmenter import Segmenter
from patter_core.providers.base import (
    LLM,
    STT,
    TTS,
    Message,
    ProviderError,
    STTStream,
    TextDelta,
    ToolCalls,
    Usage,
)

log = logging.getLogger(__name__)

OnMessage = Callable[..., Any]
# Speaking rate used to place a barge-in inside a sentence whose audio was not all made yet.
CHARS_PER_SECOND = 14.0
MAX_TOOL_ROUNDS = 5
TOOL_RESULT_TIMEOUT_S = 60.0


@dataclass
class _Reply:
    id: str
    # (text, seconds of audio) per sentence; an unfinished sentence's length is estimated
    spoken: list[tuple[str, float]] = field(default_factory=list)
    usage: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class Pipeline:
    def __init__(
        self,
        *,
        stt: STT,
        tts: TTS,
        llm: LLM | None = None,
        on_message: OnMessage | None = None,
        text_filter: Callable[[str], str] | None = None,
        max_tool_rounds: int = MAX_TOOL_ROUNDS,
    ) -> None:
        if llm is not None and on_message is not None:
            raise ValueError("llm= and on_message are mutually exclusive: use one of them")
        if llm is None and on_message is None:
            raise ValueError("a pipeline needs llm= or an on_message callback")
        self.stt = stt
        self.tts = tts
        self.llm = llm
        self.on_message = on_message
        self.text_filter = text_filter
        self.max_tool_rounds = max_tool_rounds
        self.history: list[Message] = []
        self._ctx: BrainContext | None = None
        self._stream: STTStream | None = None
        self._out: asyncio.Queue[BrainOutput | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reply_task: asyncio.Task[None] | None = None
        self._reply: _Reply | None = None
        self._tool_results: dict[str, asyncio.Future[Any]] = {}
        self._turn_text: list[str] = []
        self._heard_s: float | None = None
        self._closed = False

    @property
    def input_format(self) -> AudioFormat:
        return self.stt.input_format

    @property
    def output_format(self) -> AudioFormat:
        return self.tts.output_format

    # --- lifecycle ---------------------------------------------------------------

    async def start(self, ctx: BrainContext) -> None:
        self._ctx = ctx
        if ctx.system_prompt:
            self.history.append(Message("system", ctx.system_prompt))
        self._stream = await self.stt.open(ctx.call_id)
        self._spawn(self._listen(self._stream))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _emit(self, item: BrainOutput) -> None:
        if not self._closed:
            self._out.put_nowait(item)

    async def outputs(self) -> AsyncIterator[BrainOutput]:
        while (item := await self._out.get()) is not None:
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stream.close(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.tts.close(), 5)
        self._out.put_nowait(None)

    # --- caller side ---------------------------------------------------------------

    async def push_audio(self, payload: bytes) -> None:
        if self._stream is not None:
            await self._stream.push_audio(payload)

    async def push_dtmf(self, digit: str) -> None:
        self._turn_text.append(f"(pressed {digit})")

    async def _listen(self, stream: STTStream) -> None:
        try:
            async for result in stream.results():
                if not result.final:
                    if result.text:
                        self._emit(CallerText(" ".join([*self._turn_text, result.text]), False))
                    continue
                if result.text:
                    self._turn_text.append(result.text)
                if result.end_of_turn and self._turn_text:
                    text = " ".join(self._turn_text).strip()
                    self._turn_text = []
                    self._emit(CallerText(text, True))
                    self._start_reply(self._answer(text, time.monotonic()))
        except ProviderError as exc:
            self._emit(BrainFailure("stt_error", str(exc), fatal=True))

    # --- agent side ------------------------------------------------------------------

    def _start_reply(self, coro: Any) -> None:
        if self._reply_task is not None and not self._reply_task.done():
            self._reply_task.cancel()
        self._reply_task = self._spawn(coro)

    async def say(self, text: str) -> None:
        self._start_reply(self._speak_only(text))

    async def _speak_only(self, text: str) -> None:
        reply = self._new_reply()
        try:
            await self._speak(reply, text, time.monotonic())
            self._finish(reply)
        except asyncio.CancelledError:
            self._keep_heard(reply)
            raise

    def _new_reply(self) -> _Reply:
        self._reply = _Reply(id=uuid.uuid4().hex[:12])
        return self._reply

    async def _answer(self, caller_text: str, turn_end: float) -> None:
        reply = self._new_reply()
        self.history.append(Message("user", caller_text))
        try:
            if self.on_message is not None:
                await self._speak_stream(reply, self._from_callback(caller_text), turn_end)
            else:
                await self._llm_rounds(reply, turn_end)
            self._finish(reply)
        except asyncio.CancelledError:
            self._keep_heard(reply)
            raise
        except ProviderError as exc:
            log.warning("pipeline reply failed: %s", exc)
            self._emit(BrainFailure("llm_error", str(exc), fatal=False))
            self._finish(reply)

    async def _from_callback(self, caller_text: str) -> AsyncIterator[str]:
        assert self.on_message is not None
        ctx = self._ctx
        data = {
            "text": caller_text,
            "call_id": ctx.call_id if ctx else "",
            "caller": ctx.caller if ctx else "",
            "callee": ctx.callee if ctx else "",
            "history": [{"role": m.role, "content": m.content} for m in self.history],
        }
        params = inspect.signature(self.on_message).parameters
        result = self.on_message(caller_text, data) if len(params) >= 2 else self.on_message(data)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, str):
            yield result
        elif result is not None:
            async for piece in result:
                yield str(piece)

    async def _llm_rounds(self, reply: _Reply, turn_end: float) -> None:
        assert self.llm is not None
        specs = self._ctx.tools if self._ctx else []
        for _ in range(self.max_tool_rounds + 1):
            calls: list[Any] = []

            async def tokens(calls: list[Any] = calls) -> AsyncIterator[str]:
                assert self.llm is not None
                stream = self.llm.stream(list(self.history), specs)
                try:
                    async for chunk in stream:
                        if isinstance(chunk, TextDelta):
                            reply.timings.setdefault(
                                "llm_first_token_ms", (time.monotonic() - turn_end) * 1000
                            )
                            yield chunk.text
                        elif isinstance(chunk, ToolCalls):
                            calls.extend(chunk.calls)
                        elif isinstance(chunk, Usage):
                            u = reply.usage
                            u["llm_input_tokens"] = (
                                u.get("llm_input_tokens", 0) + chunk.input_tokens
                            )
                            u["llm_output_tokens"] = (
                                u.get("llm_output_tokens", 0) + chunk.output_tokens
                            )
                            u["llm_cached_tokens"] = (
                                u.get("llm_cached_tokens", 0) + chunk.cached_tokens
                            )
                finally:
                    with contextlib.suppress(Exception):
                        await stream.aclose()  # type: ignore[attr-defined]

            text = await self._speak_stream(reply, tokens(), turn_end)
            if not calls:
                return
            self.history.append(Message("assistant", text, tool_calls=list(calls)))
            for call in calls:
                try:
                    args = json.loads(call.arguments or "{}")
                except ValueError:
                    args = {"_raw": call.arguments}
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._tool_results[call.id] = fut
                self._emit(ToolRequest(call.id, call.name, args if isinstance(args, dict) else {}))
            for call in calls:
                try:
                    result = await asyncio.wait_for(
                        self._tool_results[call.id], TOOL_RESULT_TIMEOUT_S
                    )
                except TimeoutError:
                    result = {"error": "tool result timed out"}
                finally:
                    self._tool_results.pop(call.id, None)
                self.history.append(
                    Message(
                        "tool",
                        json.dumps(result, default=str),
                        tool_call_id=call.id,
                        name=call.name,
                    )
                )
        log.warning("pipeline stopped after %d tool rounds", self.max_tool_rounds)

    async def send_tool_result(self, tool_call_id: str, result: Any) -> None:
        fut = self._tool_results.get(tool_call_id)
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def _speak_stream(
        self, reply: _Reply, pieces: AsyncIterator[str], turn_end: float
    ) -> str:
        """Speak text as it streams, a sentence at a time; returns all the text."""
        segmenter = Segmenter()
        full = ""
        async for piece in pieces:
            full += piece
            for sentence in segmenter.push(piece):
                await self._speak(reply, sentence, turn_end)
        for sentence in segmenter.flush():
            await self._speak(reply, sentence, turn_end)
        return full

    async def _speak(self, reply: _Reply, text: str, turn_end: float) -> None:
        if self.text_filter is not None:
            text = self.text_filter(text)
        if not text.strip():
            return
        rate = self.output_format.bytes_for_ms(1000)
        audio = 0
        reply.usage["tts_characters"] = reply.usage.get("tts_characters", 0) + len(text)
        self._emit(AgentText(text + " ", final=False, response_id=reply.id))
        stream = self.tts.synthesize(text)
        finished = False
        try:
            async for chunk in stream:
                if not chunk:
                    continue
                reply.timings.setdefault("tts_first_byte_ms", (time.monotonic() - turn_end) * 1000)
                audio += len(chunk)
                self._emit(AgentAudio(chunk, response_id=reply.id))
            finished = True
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]
            made = audio / rate if rate else 0.0
            reply.spoken.append(
                (text, made if finished else max(made, len(text) / CHARS_PER_SECOND))
            )

    def _finish(self, reply: _Reply) -> None:
        text = " ".join(t for t, _ in reply.spoken)
        if text and (not self.history or self.history[-1].role != "assistant"):
            self.history.append(Message("assistant", text))
        elif text and self.history[-1].role == "assistant" and not self.history[-1].tool_calls:
            self.history[-1].content = text
        if self._stream is not None:
            reply.usage["stt_seconds"] = self._stream.audio_seconds
        self._emit(ResponseDone(reply.id, usage=dict(reply.usage), timings=dict(reply.timings)))

    def _keep_heard(self, reply: _Reply, heard_s: float | None = None) -> None:
        """History keeps what the caller heard, not what was written."""
        if heard_s is None:
            heard_s = self._heard_s
        kept: list[str] = []
        left = heard_s if heard_s is not None else sum(d for _, d in reply.spoken)
        for text, dur in reply.spoken:
            if left <= 0:
                break
            if dur <= left:
                kept.append(text)
            else:
                words = text.split()
                kept.append(" ".join(words[: int(len(words) * left / dur)]))
            left -= dur
        heard = " ".join(k for k in kept if k).strip()
        if heard:
            self.history.append(Message("assistant", heard + " …"))

    async def interrupt(self, heard_ms: float) -> None:
        """Barge-in: stop the model and every synthesis now; remember only what was heard."""
        self._heard_s = heard_ms / 1000.0
        task, self._reply_task = self._reply_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._heard_s = None
        for fut in self._tool_results.values():
            if not fut.done():
                fut.cancel()
        # Anything already queued for the session belongs to the cut reply.
        kept: list[BrainOutput] = []
        while not self._out.empty():
            item = self._out.get_nowait()
            if item is None or not isinstance(item, AgentAudio | AgentText):
                kept.append(item)  # type: ignore[arg-type]
        for item in kept:
            self._out.put_nowait(item)
