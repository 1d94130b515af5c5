"""Every LLM adapter × a whole pipeline call over simulated Twilio.

The caller's voice is a vowel-like tone (the session's VAD hears it); what they said comes
from a scripted STT; the TTS is the fake one, paced like real speech. Each LLM
talks to its fake SSE server. Covered: sentence-by-sentence streaming, a tool
round trip, barge-in mid-reply, the per-turn latency and cost parts, and the
VAD holding a turn open while the caller is still speaking.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest

from patter_core.events import BargeIn, BaseEvent, ToolCalled, ToolResult, Transcript, TurnMetrics
from patter_core.providers.base import Transcription
from patter_core.providers.llm import (
    AnthropicLLM,
    CerebrasLLM,
    GoogleLLM,
    GroqLLM,
    OpenAILLM,
    StreamSettings,
)
from patter_core.testing import SimulatedCall
from patter_core.tools import Tool
from tests.fakes.audio import mulaw, voiced
from tests.fakes.llm_servers import Api, FakeLLM, Reply
from tests.fakes.speech import FakeTTS, ScriptedSTT
from tests.twilio_harness import Rig, twilio_rig

FAST = StreamSettings(connect_timeout=5.0, read_timeout=5.0, retries=1, backoff=0.01)
PROVIDERS: dict[str, tuple[type[Any], Api]] = {
    "openai": (OpenAILLM, "openai"),
    "groq": (GroqLLM, "openai"),
    "cerebras": (CerebrasLLM, "openai"),
    "anthropic": (AnthropicLLM, "anthropic"),
    "google": (GoogleLLM, "google"),
}


class PacedTTS(FakeTTS):
    """The fake TTS, but each 20 ms chunk takes 20 ms: a synthesis is in flight while heard."""

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        inner = cast(AsyncGenerator[bytes, None], super().synthesize(text))
        try:
            async for chunk in inner:
                yield chunk
                await asyncio.sleep(0.02)
        finally:
            await inner.aclose()


@dataclass
class Call:
    rig: Rig
    sim: SimulatedCall
    llm: FakeLLM
    stt: ScriptedSTT
    tts: PacedTTS

    def events(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.rig.seen if isinstance(e, kind)]

    def agent_said(self) -> list[Transcript]:
        return [e for e in self.events(Transcript) if e.role == "agent" and e.final]

    async def until(self, done: Callable[[], bool], timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                try:
                    item = await asyncio.wait_for(self.rig.events.get(), 0.05)
                except TimeoutError:
                    continue
                if isinstance(item, BaseEvent):
                    self.rig.seen.append(item)

    async def caller_audio_played(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.sim.caller_queue_empty:
                await asyncio.sleep(0.02)

    async def speak(self, text: str, seconds: float = 0.6) -> None:
        """The caller talks for ``seconds`` (VAD hears it); the STT hears ``text``."""
        self.sim.say(mulaw(voiced(int(seconds * 1000))))
        self.stt.stream.emit(Transcription(text[: len(text) // 2], final=False))
        await self.caller_audio_played()
        self.stt.stream.emit(Transcription(text, final=True, end_of_turn=True))


@contextlib.asynccontextmanager
async def call_with(name: str, tools: list[Tool] | None = None) -> AsyncIterator[Call]:
    cls, api = PROVIDERS[name]
    async with FakeLLM(api) as fake:
        stt, tts = ScriptedSTT(), PacedTTS()
        llm = cls(api_key="test-key", base_url=fake.base_url, settings=FAST)

        def agent(phone: Any) -> Any:
            return phone.agent(stt=stt, llm=llm, tts=tts, tools=tools or [])

        async with twilio_rig(agent) as rig:
            sim = await rig.sim.inbound_call()
            call = Call(rig, sim, fake, stt, tts)
            try:
                yield call
            finally:
                await sim.hangup()
                await rig.next_event("call.ended")


def _user_texts(body: dict[str, Any]) -> list[str]:
    """The user turns of a request, whatever the API's shape."""
    texts: list[str] = []
    for msg in body.get("messages", body.get("contents", [])):
        if msg.get("role") != "user":
            continue
        content = msg.get("content", msg.get("parts"))
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p["text"] for p in content if isinstance(p, dict) and "text" in p]
    return texts


def _assert_turn_metrics(m: TurnMetrics) -> None:
    """Every latency and cost part of a pipeline turn is there."""
    lat = m.latency
    assert lat.stt_final_ms is not None and lat.stt_final_ms >= 0
    assert lat.llm_first_token_ms is not None and lat.llm_first_token_ms >= 0
    assert lat.tts_first_byte_ms is not None and lat.tts_first_byte_ms >= 0
    assert lat.end_of_speech_to_first_audio_ms is not None
    assert lat.end_of_speech_to_first_heard_ms is not None
    assert lat.end_of_speech_to_first_heard_ms >= lat.end_of_speech_to_first_audio_ms
    units = m.cost.units
    assert units.get("stt_seconds", 0) > 0
    assert units.get("llm_input_tokens", 0) > 0
    assert units.get("llm_output_tokens", 0) > 0
    assert units.get("tts_characters", 0) > 0
    assert m.cost.stt > 0 and m.cost.llm > 0 and m.cost.tts > 0


FIRST = "Your order shipped today. "
REST = ["It should arrive ", "on Friday."]


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_reply_streams_sentence_by_sentence(name: str) -> None:
    async with call_with(name) as call:
        # The LLM holds its stream after the first sentence until the test lets it go.
        call.llm.replies.append(
            Reply(tokens=["Your order ", "shipped today. ", *REST], gate_after=2)
        )
        await call.speak("where is my order")
        async with asyncio.timeout(10):
            await call.tts.until(lambda t: bool(t.started))
        assert call.tts.started == [FIRST.strip()]
        assert call.llm.seen.completed == 0  # the stream is still open
        await call.sim.wait_heard(800, timeout=10)  # the caller hears it before the stream ends
        call.llm.gate.set()
        want = FIRST + "".join(REST)
        await call.until(
            lambda: (
                any(e.text == want for e in call.agent_said())
                and any(e.turn >= 1 for e in call.events(TurnMetrics))
            )
        )
        assert call.tts.started == [FIRST.strip(), "".join(REST)]
        assert call.llm.seen.completed == 1
        assert _user_texts(call.llm.seen.requests[0])[-1] == "where is my order"
        (metrics,) = [m for m in call.events(TurnMetrics) if m.turn >= 1]
        _assert_turn_metrics(metrics)
        assert metrics.cost.units["tts_characters"] == len(FIRST.strip()) + len("".join(REST))


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_tool_call_round_trip(name: str) -> None:
    ran: list[dict[str, Any]] = []

    def lookup(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
        ran.append(args)
        return {"status": "shipped", "eta": "Friday"}

    tool = Tool(
        "lookup_order",
        "Look up an order",
        {"type": "object", "properties": {"order_id": {"type": "string"}}},
        handler=lookup,
    )
    async with call_with(name, tools=[tool]) as call:
        call.llm.replies += [
            Reply(tokens=["One moment. "], tools=[("lookup_order", {"order_id": "A-1042"})]),
            Reply(tokens=["It shipped ", "and arrives Friday."]),
        ]
        await call.speak("where is order A 1042")
        await call.until(
            lambda: (
                any("arrives Friday" in e.text for e in call.agent_said())
                and any(e.turn >= 1 for e in call.events(TurnMetrics))
            )
        )
        assert ran == [{"order_id": "A-1042"}]
        (called,) = call.events(ToolCalled)
        (result,) = call.events(ToolResult)
        assert called.name == result.name == "lookup_order"
        assert called.arguments == {"order_id": "A-1042"}
        assert result.tool_call_id == called.tool_call_id
        assert result.result == {"status": "shipped", "eta": "Friday"} and result.error is None
        # The result went back to the LLM in the second request; the reply carried on.
        assert len(call.llm.seen.requests) == 2
        first, second = (json.dumps(r) for r in call.llm.seen.requests)
        assert "shipped" not in first and "Friday" not in first
        assert "shipped" in second and "Friday" in second and "A-1042" in second
        assert call.agent_said()[-1].text == "One moment. It shipped and arrives Friday."
        assert call.tts.started == ["One moment.", "It shipped and arrives Friday."]
        (metrics,) = [m for m in call.events(TurnMetrics) if m.turn >= 1]
        _assert_turn_metrics(metrics)


LONG = "I can certainly help you with that order, let me read you everything we have on file. "


@pytest.mark.parametrize("name", list(PROVIDERS))
async def test_barge_in_cancels_llm_and_tts(name: str) -> None:
    async with call_with(name) as call:
        # One long sentence out, then the stream hangs open: the reply is mid-flight.
        call.llm.replies.append(Reply(tokens=[LONG, "And more ", "after that."], gate_after=1))
        await call.speak("tell me about my order")
        await call.sim.wait_heard(1600, timeout=10)  # 200 ms of the reply heard
        assert call.tts.started == [LONG.strip()] and not call.tts.finished
        # The caller talks over it; the STT hears real words, so the barge-in is confirmed.
        call.sim.say(mulaw(voiced(1000)))
        call.stt.stream.emit(Transcription("wait stop", final=False))
        await call.until(lambda: bool(call.events(BargeIn)))
        heard_at_cut = len(call.sim.heard)
        assert call.sim.clears >= 1
        async with asyncio.timeout(10):
            await call.llm.until(lambda s: s.aborted == 1)  # the LLM connection was closed
            await call.tts.until(lambda t: t.closed_early == [LONG.strip()])
        (barge,) = call.events(BargeIn)
        assert not barge.resumed
        assert 0 < barge.heard_ms < len(LONG.strip()) * 10
        # Nothing of the old reply reaches the caller after the carrier's clear.
        await asyncio.sleep(0.4)
        assert len(call.sim.heard) == heard_at_cut
        assert call.tts.started == [LONG.strip()]
        assert call.llm.seen.completed == 0
        # The agent transcript and the brain's history hold only what was heard.
        await call.until(lambda: bool(call.agent_said()))
        said = call.agent_said()[0]
        assert said.interrupted and said.text and LONG.startswith(said.text)
        assert len(said.text) < len(LONG.strip())
        # The next request shows the LLM the cut history.
        call.llm.replies.append(Reply(tokens=["Sure, stopping."]))
        await call.caller_audio_played()
        call.stt.stream.emit(Transcription("wait stop", final=True, end_of_turn=True))
        async with asyncio.timeout(10):
            await call.llm.until(lambda s: len(s.requests) == 2)
        second = json.dumps(call.llm.seen.requests[1])
        assert "And more" not in second and "read you everything we have on file" not in second
        assert LONG.split(",")[0][:12] in second or said.text[:12] in second


async def test_a_brief_pause_mid_sentence_gets_no_reply_until_the_caller_stops() -> None:
    """The STT sends a final with end-of-turn in a short pause; the VAD still hears speech."""
    async with call_with("openai") as call:
        call.llm.replies.append(Reply(tokens=["Checking that now."]))
        pause = mulaw(b"\x00\x00" * (8000 * 250 // 1000))  # 250 ms, inside the VAD's hangover
        call.sim.say(mulaw(voiced(800)) + pause)
        call.stt.stream.emit(Transcription("I want", final=False))
        await call.caller_audio_played()
        call.stt.stream.emit(Transcription("I want to", final=True, end_of_turn=True))
        call.sim.say(mulaw(voiced(800)))  # the caller carries on
        call.stt.stream.emit(Transcription("check my", final=False))
        await call.caller_audio_played()
        # 800 ms after that final (past the 500 ms endpoint), the turn is still open.
        assert call.llm.seen.requests == []
        assert call.tts.started == []
        call.stt.stream.emit(Transcription("check my order", final=True, end_of_turn=True))
        await call.until(lambda: any(e.text == "Checking that now." for e in call.agent_said()))
        (request,) = call.llm.seen.requests
        assert _user_texts(request) == ["I want to check my order"]
        finals = [e.text for e in call.events(Transcript) if e.role == "caller" and e.final]
        assert finals == ["I want to check my order"]
        # STT final latency counts from when the voice stopped, not from the VAD's
        # decision after its 500 ms hangover (the final came as the voice stopped).
        await call.until(lambda: any(m.turn >= 1 for m in call.events(TurnMetrics)))
        (metrics,) = [m for m in call.events(TurnMetrics) if m.turn >= 1]
        assert metrics.latency.stt_final_ms is not None
        assert metrics.latency.stt_final_ms >= 300
