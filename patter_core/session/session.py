"""``CallSession``: one carrier leg joined to one brain, for the life of a call.

The session is the only place that knows both sides. It converts audio once
each way, runs the caller VAD for barge-in, keeps the playback ledger,
executes tools, applies guardrails, handles DTMF and answering machines, and
publishes everything that happens as events. It owns every task it starts
(one ``TaskGroup``) and publishes ``call.ended`` exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from patter_core.audio.formats import AudioFormat
from patter_core.audio.transcode import Transcoder
from patter_core.brain import (
    AgentAudio,
    AgentText,
    Brain,
    BrainContext,
    BrainFailure,
    CallerSpeech,
    CallerText,
    ResponseDone,
    ToolRequest,
)
from patter_core.bus import EventBus
from patter_core.carriers.base import (
    CarrierLeg,
    LegAudio,
    LegDtmf,
    LegMark,
    LegStarted,
    LegStopped,
)
from patter_core.events import (
    AmdResult,
    BargeIn,
    CallAnswered,
    CallEnded,
    CallStarted,
    CostParts,
    Dtmf,
    ErrorEvent,
    GuardrailTriggered,
    ToolCalled,
    ToolResult,
    Transcript,
    TurnMetrics,
)
from patter_core.guardrails import apply_guardrails
from patter_core.session.apology import apology_clip
from patter_core.session.config import (
    AgentConfig,
    CallControls,
    CallInfo,
    MachineDetectionCallback,
    MachineDetectionResult,
)
from patter_core.session.interruption import Verdict, judge
from patter_core.session.ledger import PlaybackLedger, cut_text
from patter_core.session.metrics import CostMeter, ReplyTiming
from patter_core.session.vad import (
    SpeechEnded,
    SpeechEvent,
    SpeechStarted,
    SpeechSustained,
    SpeechTracker,
    make_detector,
)
from patter_core.tools import (
    E164,
    END_CALL,
    TRANSFER_CALL,
    Tool,
    ToolContext,
    call_tool,
    tool_specs,
)

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
BRAIN_READY_TIMEOUT_S = 30.0
APOLOGY_READY_S = 5.0  # to render the clip and, if the brain failed first, for the caller to join
APOLOGY_SLACK_S = 2.0  # beyond the clip's length, for the carrier to report it heard
APOLOGY_ID = "apology"
HUMAN_RESULTS = frozenset({"human", "human_residence", "human_business"})
MACHINE_START_RESULTS = frozenset({"machine_start", "machine"})
MACHINE_END_RESULTS = frozenset(
    {"machine_end_beep", "machine_end_silence", "machine_end_other", "beep_detected", "ended"}
)


class Converter(Protocol):
    def convert(self, data: bytes) -> bytes: ...


class _Passthrough:
    def convert(self, data: bytes) -> bytes:
        return data


def make_converter(src: AudioFormat, dst: AudioFormat) -> Converter:
    """Passthrough when formats match (µ-law carrier to µ-law engine), else the audio Transcoder."""
    if src == dst:
        return _Passthrough()
    return Transcoder(src, dst)


@dataclass(slots=True)
class _Reply:
    id: str
    seq: int
    turn: int
    text: str = ""
    produced_ms: float = 0.0
    done: bool = False
    cut: bool = False
    usage: dict[str, float] = field(default_factory=dict)
    timing: ReplyTiming = field(default_factory=ReplyTiming)
    metrics_sent: bool = False
    transcribed: bool = False
    server_cut: bool = False  # the provider cut it; its corrected text is what was said


@dataclass(slots=True)
class _Pause:
    """A barge-in under judgement: playback stopped (or about to), brain still running."""

    reply: _Reply
    onset_t_ms: float
    onset_clock: float
    paused_t_ms: float
    cleared: bool = False
    clear_clock: float | None = None
    replay: list[bytes] = field(default_factory=list)
    caller_text: str = ""
    text_final: bool = False


class CallSession:
    def __init__(
        self,
        leg: CarrierLeg,
        brain: Brain,
        bus: EventBus,
        agent: AgentConfig,
        info: CallInfo,
        controls: CallControls,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_machine_detection: MachineDetectionCallback | None = None,
        converter_factory: Callable[[AudioFormat, AudioFormat], Converter] = make_converter,
        announce_start: bool = True,
    ) -> None:
        self.announce_start = announce_start  # False when the call was announced at dialling
        self.leg = leg
        self.brain = brain
        self.bus = bus
        self.agent = agent
        self.info = info
        self.controls = controls
        self.clock = clock
        self.on_machine_detection = on_machine_detection
        wire = leg.wire_format
        self._converter_factory = converter_factory
        self._to_brain = converter_factory(wire, brain.input_format)
        self._to_wire = converter_factory(brain.output_format, wire)
        self._wire = wire
        self.ledger = PlaybackLedger(wire, clock=clock)
        self._vad = make_detector(wire, agent)
        self._speech = SpeechTracker(threshold_ms=agent.policy.min_speech_ms)
        self._tools: dict[str, Tool] = {t.name: t for t in agent.tools}
        self._specs = tool_specs(agent.tools)
        self._tasks: set[asyncio.Task[None]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._done = asyncio.Event()
        self._brain_ready = asyncio.Event()
        self._brain_failed = asyncio.Event()
        self._changed = asyncio.Condition()
        self._reason: str | None = None
        self._ended = False
        self._closed = False
        self._started_at: float | None = None
        self._turn = 0
        self._caller_open = False
        self._caller_words_seen = False
        self._utterance = ""
        self._new_reply = False
        self._reply_seq = 0
        self._anon = 0
        self._replies: dict[str, _Reply] = {}
        self._current: _Reply | None = None
        self._pause: _Pause | None = None
        self._held: list[bytes] = []
        self._last_eos: float | None = None
        self._greeted = False
        self._amd_verdict: str | None = None
        self._amd_fired = False
        self._machine = False
        self._voicemail_started = False
        self._caller_t_ms = 0.0
        self._onset_clock = 0.0
        self.cost = CostMeter(agent.pricing, outbound=info.direction == "outbound")
        self.transcript: list[dict[str, Any]] = []
        self.amd: dict[str, Any] = {}

    # --- lifecycle ---------------------------------------------------------------

    @property
    def call_id(self) -> str:
        return self.info.call_id

    @property
    def ended_reason(self) -> str | None:
        return self._reason

    def end(self, reason: str) -> None:
        """Ask the session to finish; the first reason given wins."""
        if self._reason is None:
            self._reason = reason
        self._done.set()

    async def run(self) -> dict[str, Any]:
        """Run the call to its end; returns the summary (also published as ``call.ended``)."""
        info = self.info
        if self.announce_start:
            self._publish(
                CallStarted(
                    call_id=info.call_id,
                    direction=info.direction,
                    caller=info.caller,
                    callee=info.callee,
                    carrier=info.carrier,
                    agent=self.agent.name,
                )
            )
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._spawn(self._start_brain())
                self._spawn(self._leg_loop())
                await self._done.wait()
                await self._stop_tasks()
        except* Exception as group:
            for exc in group.exceptions:
                log.error("call %s: session task failed", info.call_id, exc_info=exc)
            self.end("error")
        finally:
            self._tg = None
            for reply in self._replies.values():
                if reply.produced_ms or reply.text:
                    self._agent_transcript(reply)
                self._flush_metrics(reply)
            await self._close_both()
            summary = self.summary()
            self._publish_end(summary)
        return summary

    def _spawn(self, coro: Any) -> asyncio.Task[None] | None:
        if self._tg is None or self._done.is_set():
            coro.close()  # the call is ending: nothing new starts
            return None
        task: asyncio.Task[None] = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _stop_tasks(self) -> None:
        """Cancel every session task and wait for them, bounded.

        A task that will not stop (a cancel lost in a library) is unblocked by closing
        the brain and the leg, so the call always ends.
        """
        for _ in range(3):
            pending = [t for t in self._tasks if not t.done()]
            if not pending:
                return
            for task in pending:
                task.cancel()
            _, left = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
            if left:
                log.warning(
                    "call %s: %d task(s) ignored cancellation; closing", self.call_id, len(left)
                )
                await self._close_both()

    async def _close_both(self) -> None:
        if self._closed:
            return
        self._closed = True
        for name, closer in (("brain", self.brain.close), ("leg", self.leg.close)):
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await closer()
            except Exception:
                log.warning("call %s: closing %s failed", self.call_id, name, exc_info=True)

    def _elapsed_s(self) -> float:
        return 0.0 if self._started_at is None else max(self.clock() - self._started_at, 0.0)

    def summary(self) -> dict[str, Any]:
        duration = self._elapsed_s()
        cost = self.cost.call_total(duration)
        return {
            "call_id": self.info.call_id,
            "direction": self.info.direction,
            "caller": self.info.caller,
            "callee": self.info.callee,
            "reason": self._reason or "completed",
            "duration_s": round(duration, 3),
            "turns": self._turn,
            "transcript": list(self.transcript),
            "cost": cost.model_dump(),
            "total_cost": cost.total,
            "amd": dict(self.amd),
        }

    def _publish_end(self, summary: dict[str, Any]) -> None:
        if self._ended:
            return
        self._ended = True
        reason = summary["reason"]
        status = "completed" if reason in ("hangup", "agent_hangup", "voicemail") else reason
        self._publish(
            CallEnded(
                call_id=self.call_id,
                reason=reason,
                status=status,
                duration_s=summary["duration_s"],
                turns=summary["turns"],
                cost=CostParts.model_validate(summary["cost"]),
            )
        )

    def _publish(self, event: Any) -> None:
        self.bus.publish(event)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- brain side ------------------------------------------------------------------

    async def _start_brain(self) -> None:
        ctx = BrainContext(
            call_id=self.info.call_id,
            caller=self.info.caller,
            callee=self.info.callee,
            direction=self.info.direction,
            system_prompt=self.agent.system_prompt,
            first_message="",  # spoken by the session through say() when the leg starts
            voice=self.agent.voice,
            tools=self._specs,
            carrier_format=self._wire,
        )
        try:
            await self.brain.start(ctx)
        except Exception as exc:
            self._error("engine_start", f"brain failed to start: {exc}", fatal=True)
            await self._fail("engine_error")
            return
        # An engine picks its audio formats while starting (µ-law for a µ-law carrier),
        # so the converters are decided again now that they are known.
        self._to_brain = self._converter_factory(self._wire, self.brain.input_format)
        self._to_wire = self._converter_factory(self.brain.output_format, self._wire)
        self._brain_ready.set()
        self._spawn(self._brain_loop())

    async def _brain_loop(self) -> None:
        try:
            async for out in self.brain.outputs():
                self._new_reply = False
                if isinstance(out, AgentAudio):
                    await self._on_agent_audio(out)
                elif isinstance(out, AgentText):
                    await self._on_agent_text(out)
                elif isinstance(out, CallerText):
                    await self._on_caller_text(out)
                elif isinstance(out, CallerSpeech):
                    if not out.speaking:
                        self._last_eos = self.clock()
                    elif out.interrupted:
                        await self._on_server_barge_in()
                elif isinstance(out, ToolRequest):
                    self._spawn(self._run_tool(out))
                elif isinstance(out, ResponseDone):
                    await self._on_response_done(out)
                elif isinstance(out, BrainFailure):
                    self._error(out.code, out.message, fatal=out.fatal)
                    if out.fatal:
                        await self._fail("engine_error")
                        return
                if self._new_reply:
                    await self._notify()
        except Exception as exc:
            self._error("engine_error", f"brain output failed: {exc}", fatal=True)
            await self._fail("engine_error")
            return
        if self._reason is None:
            self._error("engine_closed", "brain stopped producing output", fatal=True)
            await self._fail("engine_error")

    async def _fail(self, reason: str) -> None:
        """End the call after the brain failed, apologising first if the caller is there."""
        if self._reason is not None or self._done.is_set():
            self.end(reason)
            return
        self._reason = reason  # a hang-up during the apology does not change why the call ended
        self._brain_failed.set()
        if self.agent.apology and not self._machine:
            await self._apologise(self.agent.apology)
        self.end(reason)

    async def _apologise(self, text: str) -> None:
        """Play the canned apology over whatever the broken reply left queued, and wait for it."""
        try:
            async with asyncio.timeout(APOLOGY_READY_S):
                clip = await apology_clip(text, self._wire)
                if not await self._until(lambda: self._started_at is not None):
                    return
        except Exception:
            log.warning("call %s: no apology: the clip or the caller was not ready", self.call_id)
            return
        self._pause = None
        if self.ledger.speaking:
            await self.leg.clear()
            self.ledger.clear()
        self._reply_seq += 1
        reply = _Reply(APOLOGY_ID, self._reply_seq, self._turn, text=text, done=True)
        reply.metrics_sent = True  # not a turn: no latency or cost of its own
        reply.produced_ms = len(clip) / self._wire.bytes_for_ms(1000) * 1000.0
        self._replies[APOLOGY_ID] = reply
        await self._send_wire(reply, clip)
        heard = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(reply.produced_ms / 1000.0 + APOLOGY_SLACK_S):
                heard = await self._until(lambda: self._fully_heard(reply))
        self._agent_transcript(reply, interrupted=not heard)

    async def _until(self, ready: Callable[[], bool]) -> bool:
        """Wait for ``ready()``, re-checked whenever playback or the leg changes; False if the
        call ends first. Callers bound it with a timeout."""

        async def changed() -> None:
            async with self._changed:
                await self._changed.wait_for(ready)

        waiter = asyncio.ensure_future(changed())
        ended = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait([waiter, ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            ended.cancel()
        return ready() and not self._done.is_set()

    def _error(self, code: str, message: str, *, fatal: bool) -> None:
        log.warning("call %s: %s: %s", self.call_id, code, message)
        self._publish(ErrorEvent(call_id=self.call_id, code=code, message=message, fatal=fatal))

    def _reply_for(self, response_id: str) -> _Reply:
        key = response_id or f"anon-{self._anon}"
        reply = self._replies.get(key)
        if reply is None:
            self._reply_seq += 1
            reply = _Reply(key, self._reply_seq, self._turn)
            reply.timing.end_of_speech, self._last_eos = self._last_eos, None
            self._replies[key] = reply
            self._new_reply = True
        return reply

    async def _on_agent_audio(self, out: AgentAudio) -> None:
        reply = self._reply_for(out.response_id)
        if reply.cut:
            return
        if self._pause is not None and self._pause.reply is not reply:
            # The brain moved on to a new reply while a barge-in was pending.
            await self._confirm(self._pause, interrupt_brain=False)
        self._current = reply
        wire = self._to_wire.convert(out.payload)
        reply.produced_ms += len(wire) / self._wire.bytes_for_ms(1000) * 1000.0
        if self._pause is not None and self._pause.cleared:
            self._pause.replay.append(wire)
            return
        await self._send_wire(reply, wire)

    async def _send_wire(self, reply: _Reply, wire: bytes) -> None:
        """Send a reply's audio with a mark after every ``mark_every_ms`` of it (and at its end)."""
        every = self.agent.mark_every_ms
        step = max(self._wire.bytes_for_ms(every), 1)
        if self.ledger.open_response not in (None, reply.id):
            await self._seal()
        if reply.timing.first_sent is None:
            reply.timing.first_sent = self.clock()
        i = 0
        while i < len(wire):
            # Cut where the next mark falls, so each marked stretch can leave as one
            # carrier message (PacedOutput joins queued audio up to a mark).
            room = max(step - self.ledger.open_bytes(reply.id), 1)
            piece = wire[i : i + room]
            i += len(piece)
            await self.leg.send_audio(piece)
            mark = self.ledger.record_sent(reply.id, piece, min_ms=every)
            if mark is not None:
                await self.leg.send_mark(mark)
        if reply.done:
            await self._seal()

    async def _seal(self) -> None:
        mark = self.ledger.seal()
        if mark is not None:
            await self.leg.send_mark(mark)

    async def _on_agent_text(self, out: AgentText) -> None:
        reply = self._reply_for(out.response_id)
        if reply.cut:
            return
        if out.final and out.text:
            reply.text = out.text
        elif not out.final:
            reply.text += out.text
        if not self.agent.guardrails:
            return
        _, fired = apply_guardrails(reply.text, self.agent.guardrails)
        if fired is None:
            return
        original = reply.text
        await self._cut_reply(reply, interrupted=True)
        self._publish(
            GuardrailTriggered(
                call_id=self.call_id,
                name=fired.name,
                original=original,
                replacement=fired.replacement,
            )
        )
        await self.brain.say(fired.replacement)

    async def _cut_reply(self, reply: _Reply, *, interrupted: bool, brain: bool = True) -> float:
        """Stop a reply where the caller stopped hearing it; returns heard ms."""
        await self._clear_if_playing(reply)
        self._held.clear()
        heard = self.ledger.heard_ms(reply.id)
        reply.cut = True
        if brain:
            await self.brain.interrupt(heard)
        self._agent_transcript(reply, interrupted=interrupted)
        self._flush_metrics(reply)
        return heard

    def _agent_transcript(self, reply: _Reply, *, interrupted: bool = False) -> None:
        """Record what the caller heard of a reply, once."""
        if reply.transcribed:
            return
        reply.transcribed = True
        heard = self.ledger.heard_ms(reply.id)
        interrupted = interrupted or reply.server_cut
        if reply.produced_ms == 0:
            text = reply.text
        else:
            text = cut_text(reply.text, heard, max(reply.produced_ms, heard))
            interrupted = interrupted or heard + 1 < reply.produced_ms
        if text:
            self._transcript("agent", text, reply.turn, interrupted=interrupted)

    def _fully_heard(self, reply: _Reply) -> bool:
        return reply.done and self.ledger.heard_ms(reply.id) + 1 >= reply.produced_ms

    async def _on_response_done(self, out: ResponseDone) -> None:
        reply = self._reply_for(out.response_id)
        reply.done = True
        if self.ledger.open_response == reply.id:
            await self._seal()  # its last audio gets a mark, so it can be heard to the end
        reply.usage = dict(out.usage)
        reply.timing.pipeline.update(out.timings)
        if not out.response_id:
            self._anon += 1
        if reply.server_cut or (not reply.cut and self._fully_heard(reply)):
            self._agent_transcript(reply)
        if (
            reply.cut
            or reply.server_cut
            or reply.timing.first_heard is not None
            or reply.produced_ms == 0
        ):
            self._flush_metrics(reply)
        await self._notify()

    def _flush_metrics(self, reply: _Reply) -> None:
        if reply.metrics_sent:
            return
        reply.metrics_sent = True
        cost = self.cost.turn(reply.usage, self._elapsed_s())
        self._publish(
            TurnMetrics(
                call_id=self.call_id,
                turn=reply.turn,
                latency=reply.timing.latency(),
                cost=cost,
                total_cost=self.cost.running_total(),
            )
        )

    def _transcript(self, role: str, text: str, turn: int, *, interrupted: bool = False) -> None:
        entry = {"role": role, "text": text, "turn": turn, "interrupted": interrupted}
        self.transcript.append(entry)
        self._publish(
            Transcript(
                call_id=self.call_id,
                role=cast(Any, role),
                text=text,
                turn=turn,
                interrupted=interrupted,
            )
        )

    async def _on_caller_text(self, out: CallerText) -> None:
        self._caller_words_seen = True
        if not self._caller_open:
            self._caller_open = True
            self._turn += 1
        self._utterance = out.text
        if self._pause is not None:
            self._pause.caller_text = out.text
            self._pause.text_final = out.final
            await self._judge()
        if out.final:
            self._caller_open = False
            self._utterance = ""
            if out.text.strip():
                self._transcript("caller", out.text, self._turn)
        else:
            self._publish(
                Transcript(
                    call_id=self.call_id, role="caller", text=out.text, final=False, turn=self._turn
                )
            )

    # --- tools -------------------------------------------------------------------------

    async def _run_tool(self, req: ToolRequest) -> None:
        self._publish(
            ToolCalled(
                call_id=self.call_id,
                tool_call_id=req.tool_call_id,
                name=req.name,
                arguments=req.arguments,
            )
        )
        started = self.clock()
        after: Callable[[], Any] | None = None
        result: Any = None
        error: str | None = None
        if req.name == TRANSFER_CALL.name:
            result, error = await self._transfer(str(req.arguments.get("number", "")))
        elif req.name == END_CALL.name:
            result, after = {"status": "ending call"}, self._hang_up_when_quiet
        elif (tool := self._tools.get(req.name)) is not None:
            ctx = ToolContext(
                call_id=self.call_id, caller=self.info.caller, callee=self.info.callee
            )
            result, error = await call_tool(tool, dict(req.arguments), ctx)
        else:
            error = f"unknown tool {req.name!r}"
        payload = {"error": error} if error is not None else result
        try:
            await self.brain.send_tool_result(req.tool_call_id, payload)
        except Exception as exc:
            self._error("tool_result", f"could not deliver tool result: {exc}", fatal=False)
        self._publish(
            ToolResult(
                call_id=self.call_id,
                tool_call_id=req.tool_call_id,
                name=req.name,
                result=result if error is None else None,
                error=error,
                duration_ms=round((self.clock() - started) * 1000.0, 1),
            )
        )
        if after is not None:
            await after()

    async def _transfer(self, number: str) -> tuple[Any, str | None]:
        if not E164.match(number):
            return None, f"transfer number {number!r} is not in E.164 form (+15550001111)"
        try:
            await self.controls.transfer(number)
        except Exception as exc:
            return None, f"transfer failed: {exc}"
        self.end("transferred")
        return {"status": "transferring", "number": number}, None

    async def _hang_up_when_quiet(self) -> None:
        """Let a goodbye (if the brain says one) be heard, then hang up.

        Waits up to ``goodbye_wait_s`` for a reply to start, then up to
        ``end_call_timeout_s`` for everything to be heard.
        """
        seq = self._reply_seq
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.agent.goodbye_wait_s):
                await self._wait_quiet(seq, need_new=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.agent.end_call_timeout_s):
                await self._wait_quiet(seq)
        await self._hangup("agent_hangup")

    async def _wait_quiet(self, after_seq: int, *, need_new: bool = False) -> None:
        def quiet() -> bool:
            newer = [r for r in self._replies.values() if r.seq > after_seq]
            if need_new and not newer:
                return False
            return all(r.done or r.cut for r in newer) and not self.ledger.speaking

        async with self._changed:
            await self._changed.wait_for(quiet)

    async def _hangup(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
        try:
            await self.controls.hangup()
        except Exception as exc:
            self._error("hangup", f"hangup failed: {exc}", fatal=False)
        self.end(reason)

    # --- carrier side ------------------------------------------------------------------

    async def _leg_loop(self) -> None:
        try:
            async for ev in self.leg.events():
                if self._done.is_set():
                    return  # ending: the stream may keep talking, the call does not
                if isinstance(ev, LegAudio):
                    await self._on_caller_audio(ev)
                elif isinstance(ev, LegMark):
                    if self.ledger.ack(ev.name) is not None:
                        self._on_heard()
                        await self._notify()
                elif isinstance(ev, LegDtmf):
                    self._publish(Dtmf(call_id=self.call_id, digit=ev.digit))
                    if not self._brain_failed.is_set():
                        await self.brain.push_dtmf(ev.digit)
                elif isinstance(ev, LegStarted):
                    await self._on_leg_started()
                    await self._notify()
                elif isinstance(ev, LegStopped):
                    self.end("hangup" if ev.reason == "hangup" else "interrupted")
                    return
        except Exception as exc:
            self._error("leg", f"media stream failed: {exc}", fatal=True)
            self.end("interrupted")
            return
        self.end("interrupted")

    async def _on_leg_started(self) -> None:
        if self._started_at is None:
            self._started_at = self.clock()
            self._publish(CallAnswered(call_id=self.call_id))
        if self.info.amd_pending and not self.agent.greet_before_amd:
            return
        await self._greet()

    async def _greet(self) -> None:
        if self._greeted or self._machine:
            return
        self._greeted = True
        if self.agent.first_message:
            # A remote engine can only speak once its socket is up (start() may still run).
            if not await self._until_brain_ready():
                return
            await self.brain.say(self.agent.first_message)

    async def _until_brain_ready(self) -> bool:
        """Wait for the brain to start; False if the call ends (or it never starts) first."""
        if self._brain_ready.is_set():
            return True
        ready = asyncio.ensure_future(self._brain_ready.wait())
        failed = asyncio.ensure_future(self._brain_failed.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait(
                [ready, failed, done],
                timeout=BRAIN_READY_TIMEOUT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for waiter in (ready, failed, done):
                waiter.cancel()
        return self._brain_ready.is_set() and not self._done.is_set()

    def _on_heard(self) -> None:
        for reply in self._replies.values():
            rp = self.ledger.response(reply.id)
            if reply.timing.first_heard is None and rp.first_heard_at is not None:
                reply.timing.first_heard = rp.first_heard_at
                if reply.done:
                    self._flush_metrics(reply)
            if not reply.cut and not reply.transcribed and self._fully_heard(reply):
                self._agent_transcript(reply)

    async def _on_caller_audio(self, ev: LegAudio) -> None:
        if self._brain_failed.is_set():
            return  # nothing to hear it, and the apology is not interruptible
        if not self._machine:
            await self.brain.push_audio(self._to_brain.convert(ev.payload))
        for frame in await self._vad.afeed(ev.payload, ev.timestamp_ms):
            self._caller_t_ms = frame.t_ms + 20
            for sev in self._speech.update(frame):
                await self._on_speech(sev)
        if self._pause is not None:
            await self._judge()

    async def _on_server_barge_in(self) -> None:
        """The provider cut its own reply: drop what the carrier still queues, keep its text.

        The brain already stopped, so interrupt() is not called; the reply's final
        (corrected) text arrives next and is transcribed as interrupted.
        """
        reply = self._current
        if reply is None or reply.cut or reply.done or reply.server_cut:
            return
        reply.server_cut = True
        if self._pause is not None and self._pause.reply is reply:
            self._pause = None
        detect = 0.0
        if await self._clear_if_playing(reply) and self._onset_clock:
            detect = round(max(self.clock() - self._onset_clock, 0.0) * 1000.0, 1)
        self._publish_barge_in(reply, self.ledger.heard_ms(reply.id), detect)
        await self._notify()

    async def _clear_if_playing(self, reply: _Reply) -> bool:
        """Flush the carrier and the ledger if ``reply`` is what the caller hears now."""
        if self.ledger.current_response() != reply.id:
            return False
        await self.leg.clear()
        self.ledger.clear()
        return True

    def _publish_barge_in(self, reply: _Reply, heard: float, detect: float) -> None:
        reply.timing.barge_in_to_clear_ms = detect
        self._publish(
            BargeIn(call_id=self.call_id, heard_ms=round(heard, 1), detect_to_clear_ms=detect)
        )

    def _agent_speaking(self) -> bool:
        cur = self._current
        return self.ledger.speaking or (cur is not None and not cur.done and not cur.cut)

    async def _on_speech(self, sev: SpeechEvent) -> None:
        if isinstance(sev, SpeechStarted):
            self._onset_clock = self.clock()
            self._tell_brain_speaking(True)
        elif isinstance(sev, SpeechEnded):
            lag_s = (self._caller_t_ms - sev.t_ms) / 1000.0
            self._last_eos = self.clock() - lag_s
            self._tell_brain_speaking(False, lag_s)
        elif isinstance(sev, SpeechSustained):
            reply = self._current
            if not self.agent.policy.enabled:
                return
            if self._machine or self._pause is not None or reply is None or reply.cut:
                return
            if reply.server_cut:
                return
            if not self._agent_speaking():
                return
            self._pause = _Pause(
                reply=reply,
                onset_t_ms=sev.onset_ms,
                onset_clock=self._onset_clock,
                paused_t_ms=sev.t_ms,
                caller_text=self._utterance,
            )
            policy = self.agent.policy
            if policy.pause_before_words or not policy.resume:
                await self._clear_for(self._pause)
            await self._judge()

    def _tell_brain_speaking(self, speaking: bool, ago_s: float = 0.0) -> None:
        """Hand the VAD's segment start/end to the brain (the pipeline holds turns on it)."""
        hook = getattr(self.brain, "caller_speaking", None)
        if hook is None:
            return
        try:
            hook(speaking, ago_s)
        except Exception as exc:
            self._error("brain_vad", f"caller_speaking failed: {exc}", fatal=False)

    async def _clear_for(self, pause: _Pause) -> None:
        await self.leg.clear()
        pause.clear_clock = self.clock()
        pause.cleared = True
        dropped = self.ledger.clear()
        pause.replay = dropped.get(pause.reply.id, [])

    async def _judge(self) -> None:
        pause = self._pause
        if pause is None:
            return
        verdict = judge(
            self.agent.policy,
            caller_text=pause.caller_text,
            text_final=pause.text_final,
            elapsed_ms=self._caller_t_ms - pause.paused_t_ms,
            still_speaking=self._speech.talking_now,
            words_available=self._caller_words_seen,
        )
        if verdict is Verdict.CONFIRM:
            await self._confirm(pause, interrupt_brain=True)
        elif verdict is Verdict.RESUME:
            await self._resume(pause)

    async def _confirm(self, pause: _Pause, *, interrupt_brain: bool) -> None:
        self._pause = None
        if not pause.cleared:
            await self._clear_for(pause)
        reply = pause.reply
        heard = await self._cut_reply(reply, interrupted=True, brain=interrupt_brain)
        self._publish_barge_in(reply, heard, self._detect_to_clear(pause))
        await self._notify()

    async def _resume(self, pause: _Pause) -> None:
        self._pause = None
        heard = self.ledger.heard_ms(pause.reply.id)
        if pause.cleared:
            for wire in pause.replay:
                await self._send_wire(pause.reply, wire)
        self._publish(
            BargeIn(
                call_id=self.call_id,
                heard_ms=round(heard, 1),
                detect_to_clear_ms=self._detect_to_clear(pause),
                resumed=True,
            )
        )

    @staticmethod
    def _detect_to_clear(pause: _Pause) -> float:
        if pause.clear_clock is None:
            return 0.0
        return round((pause.clear_clock - pause.onset_clock) * 1000.0, 1)

    # --- DTMF and answering machines -------------------------------------------------

    async def send_dtmf(self, digits: str) -> None:
        await self.controls.send_dtmf(digits)

    async def on_amd(self, result: str) -> None:
        """The carrier's answering-machine verdict (Twilio AnsweredBy, Telnyx result)."""
        result = result.strip().lower()
        first = self._amd_verdict is None
        if first:
            self._amd_verdict = result
            detection_ms = (
                round(self._elapsed_s() * 1000.0, 1) if self._started_at is not None else None
            )
            machine = result not in HUMAN_RESULTS and result not in ("unknown", "not_sure")
            self.amd.update(result=result, machine=machine, detection_ms=detection_ms)
            self._publish(
                AmdResult(
                    call_id=self.call_id, result=result, machine=machine, detection_ms=detection_ms
                )
            )
            await self._fire_machine_detection(result, machine, detection_ms)
        if self._done.is_set():
            return  # the call is ending (a hang-up won the race): recorded, nothing to act on
        if result in MACHINE_START_RESULTS or result in MACHINE_END_RESULTS or result == "fax":
            await self._on_machine(result)
        elif first:
            await self._greet()

    async def _fire_machine_detection(
        self, result: str, machine: bool, detection_ms: float | None
    ) -> None:
        if self._amd_fired or self.on_machine_detection is None:
            return
        self._amd_fired = True
        payload = MachineDetectionResult(self.call_id, result, machine, detection_ms)
        try:
            out = self.on_machine_detection(payload)
            if inspect.isawaitable(out):
                await out
        except Exception:
            log.exception("call %s: on_machine_detection callback failed", self.call_id)

    async def _on_machine(self, result: str) -> None:
        if not self._machine:
            self._machine = True
            self._pause = None
            cur = self._current
            if cur is not None and not cur.cut and not (cur.done and not self.ledger.speaking):
                await self._cut_reply(cur, interrupted=True)
        if not self.agent.voicemail_message or result == "fax":
            if result in MACHINE_END_RESULTS or result == "fax":
                await self._hangup("machine")
            return
        if result in MACHINE_END_RESULTS:
            self._spawn(self._leave_voicemail())
        else:
            self._spawn(self._voicemail_after_timeout())

    async def _voicemail_after_timeout(self) -> None:
        await asyncio.sleep(self.agent.beep_timeout_s)
        await self._leave_voicemail()

    async def _leave_voicemail(self) -> None:
        if self._voicemail_started:
            return
        self._voicemail_started = True
        seq = self._reply_seq
        await self.brain.say(self.agent.voicemail_message)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.agent.end_call_timeout_s + 60):
                await self._wait_quiet(seq, need_new=True)
        await self._hangup("voicemail")
