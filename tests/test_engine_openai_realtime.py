"""OpenAIRealtime as a Brain against the local fake Realtime server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from patter_core.audio.formats import MULAW_8K, PCM16_16K, PCM16_24K
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
    ToolSpec,
)
from patter_core.engines.errors import EngineError
from patter_core.engines.openai_realtime import OpenAIRealtime, usage_units
from tests.engine_helpers import Outputs
from tests.fakes.openai_realtime import FakeOpenAIRealtime, Reply

KEY = "sk-test-realtime"
SPEECH = bytes([0x10]) * 160  # 20 ms of loud µ-law
SILENCE = bytes([0xFF]) * 160

TOOLS = [
    ToolSpec("lookup_order", "Find an order", {"type": "object", "properties": {}}),
    ToolSpec("end_call", "Hang up", {"type": "object", "properties": {}}),
]


def ctx(carrier: object = MULAW_8K) -> BrainContext:
    return BrainContext(
        call_id="CA1",
        caller="+15550001",
        callee="+15550002",
        direction="inbound",
        system_prompt="You are a phone agent.",
        voice="cedar",
        tools=list(TOOLS),
        carrier_format=carrier,  # type: ignore[arg-type]
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIRealtime]:
    async with FakeOpenAIRealtime(key=KEY) as server:
        yield server


def engine(fake: FakeOpenAIRealtime, **kw: object) -> OpenAIRealtime:
    kw.setdefault("api_key", KEY)
    return OpenAIRealtime(base_url=fake.base_url, **kw)  # type: ignore[arg-type]


async def caller_turn(brain: OpenAIRealtime) -> None:
    for _ in range(3):
        await brain.push_audio(SPEECH)
    await brain.push_audio(SILENCE)


async def test_is_a_brain_and_configures_a_ga_session(fake: FakeOpenAIRealtime) -> None:
    brain = engine(fake)
    assert isinstance(brain, Brain)
    await brain.start(ctx())
    conn = fake.conns[0]
    assert conn.headers["Authorization"] == f"Bearer {KEY}"
    assert "OpenAI-Beta" not in conn.headers
    s = conn.session
    assert s["type"] == "realtime"
    assert s["instructions"] == "You are a phone agent."
    assert s["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert s["audio"]["output"] == {"format": {"type": "audio/pcmu"}, "voice": "cedar"}
    assert s["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
    assert s["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert [t["name"] for t in s["tools"]] == ["lookup_order", "end_call"]
    assert s["tools"][0] == {
        "type": "function",
        "name": "lookup_order",
        "description": "Find an order",
        "parameters": {"type": "object", "properties": {}},
    }
    assert brain.input_format == MULAW_8K and brain.output_format == MULAW_8K
    await brain.close()


async def test_pcm_carrier_gets_pcm16_24k(fake: FakeOpenAIRealtime) -> None:
    brain = engine(fake)
    await brain.start(ctx(PCM16_16K))
    assert fake.conns[0].session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert brain.input_format == PCM16_24K
    await brain.close()


async def test_whole_turn_audio_transcripts_usage(fake: FakeOpenAIRealtime) -> None:
    fake.caller_says = ["Where is my order?"]
    fake.replies = [Reply(text="It ships today.", audio_ms=500)]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ResponseDone, 1)

    assert [s.speaking for s in outs.of(CallerSpeech)] == [True, False]
    caller = outs.of(CallerText)
    assert caller[-1] == CallerText("Where is my order?", final=True)
    assert caller[0].final is False and "Where is my order?".startswith(caller[0].text)
    audio = outs.of(AgentAudio)
    assert sum(len(a.payload) for a in audio) == 500 * 8  # µ-law 8 kHz, 500 ms
    rid = audio[0].response_id
    texts = outs.of(AgentText)
    assert "".join(t.text for t in texts if not t.final) == "It ships today."
    assert texts[-1] == AgentText("It ships today.", final=True, response_id=rid)
    done = outs.of(ResponseDone)[0]
    assert done.response_id == rid
    assert done.usage["realtime_text_input_tokens"] == 150 - 64
    assert done.usage["realtime_cached_text_tokens"] == 64
    assert done.usage["realtime_audio_input_tokens"] == 50
    assert done.usage["realtime_audio_output_tokens"] == 10
    assert done.usage["realtime_text_output_tokens"] == 3
    assert done.usage["stt_seconds"] == 1.5
    assert "engine_first_audio_ms" in done.timings
    assert fake.conns[0].audio_bytes == 4 * 160
    await brain.close()
    await outs.stop()


async def test_tool_call_round_trip(fake: FakeOpenAIRealtime) -> None:
    fake.replies = [
        Reply(tool="lookup_order", arguments={"order": "A17"}),
        Reply(text="Order A17 ships today."),
    ]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ToolRequest, 1)
    req = outs.of(ToolRequest)[0]
    assert req.name == "lookup_order" and req.arguments == {"order": "A17"}
    await outs.count(ResponseDone, 1)
    await brain.send_tool_result(req.tool_call_id, {"status": "shipped"})
    await outs.until(lambda o: any(t.final and "A17" in t.text for t in o.of(AgentText)))
    conn = fake.conns[0]
    output = next(i for i in conn.items if i["type"] == "function_call_output")
    assert output["call_id"] == req.tool_call_id
    assert json.loads(output["output"]) == {"status": "shipped"}
    kinds = [e["type"] for e in conn.received]
    assert kinds.index("response.create") > kinds.index("conversation.item.create")
    await brain.close()
    await outs.stop()


async def test_beta_shape_and_tool_name_from_output_item(fake: FakeOpenAIRealtime) -> None:
    fake.replies = [Reply(tool="end_call")]
    brain = engine(fake, api="beta")
    await brain.start(ctx())
    conn = fake.conns[0]
    assert conn.headers["OpenAI-Beta"] == "realtime=v1"
    assert conn.session["input_audio_format"] == "g711_ulaw"
    assert conn.session["voice"] == "cedar"
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ToolRequest, 1)
    assert outs.of(ToolRequest)[0].name == "end_call"
    await brain.close()
    await outs.stop()


async def test_interrupt_cancels_and_truncates_at_heard_ms(fake: FakeOpenAIRealtime) -> None:
    fake.replies = [Reply(text="A very long answer " * 5, audio_ms=3000, pace_s=0.02)]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(AgentAudio, 3)
    await brain.interrupt(180.0)
    await outs.count(ResponseDone, 1)
    await fake.until(lambda f: bool(f.conns[0].truncations))
    conn = fake.conns[0]
    trunc = conn.truncations[0]
    assert trunc["audio_end_ms"] == 180 and trunc["content_index"] == 0
    assert conn.responses == ["cancelled"]
    assert "response.cancel" in [e["type"] for e in conn.received]
    audio_after = len(outs.of(AgentAudio))
    assert audio_after < 30
    # The truncated reply is what the model remembers: a later replay holds only the heard part.
    assistant = [e for e in brain.history.entries if e.kind == "assistant"]
    assert all(len(e.text) < len("A very long answer " * 5) for e in assistant)
    await brain.close()
    await outs.stop()


async def test_truncate_never_past_the_audio_received(fake: FakeOpenAIRealtime) -> None:
    fake.replies = [Reply(text="Short.", audio_ms=200)]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ResponseDone, 1)
    await brain.interrupt(5000.0)
    await fake.until(lambda f: bool(f.conns[0].truncations))
    assert fake.conns[0].truncations[0]["audio_end_ms"] == 200
    assert not [e for e in fake.conns[0].errors if e["code"] == "invalid_value"]
    await brain.close()
    await outs.stop()


async def test_say_speaks_the_given_text(fake: FakeOpenAIRealtime) -> None:
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await brain.say('Hi, this is "Patter".')
    await outs.count(ResponseDone, 1)
    assert outs.of(AgentText)[-1].text == 'Hi, this is "Patter".'
    await brain.close()
    await outs.stop()


@pytest.mark.parametrize("how", ["handshake", "event"])
async def test_refused_key_is_a_fatal_failure_without_the_key(
    fake: FakeOpenAIRealtime, how: str
) -> None:
    fake.auth_failure = how  # type: ignore[assignment]
    brain = engine(fake, api_key="sk-wrong-key-123456")
    await brain.start(ctx())
    outs = Outputs(brain)
    await outs.until(lambda o: o.ended)
    failure = outs.of(BrainFailure)[0]
    assert failure.code == "auth_failed" and failure.fatal
    assert "sk-wrong-key-123456" not in failure.message
    assert len(fake.conns) <= 1  # a refused key is not retried
    await brain.close()


def test_missing_key_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EngineError) as err:
        OpenAIRealtime()
    assert err.value.code == "auth_failed"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert OpenAIRealtime()._headers()["Authorization"] == "Bearer sk-from-env"


async def test_rate_limit_error_event_is_a_failure(fake: FakeOpenAIRealtime) -> None:
    fake.replies = [Reply(rate_limited=True)]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.until(lambda o: o.ended)
    assert outs.of(BrainFailure)[-1].code == "rate_limited"
    await brain.close()


async def test_drop_reconnects_once_with_conversation_then_fails(
    fake: FakeOpenAIRealtime,
) -> None:
    fake.caller_says = ["What time do you open?", "And on Sunday?", "Thanks"]
    fake.replies = [
        Reply(text="We open at nine."),
        Reply(text="On Sunday we open", audio_ms=1000, drop_after_chunks=2),
        Reply(text="On Sunday we open at ten."),
        Reply(text="You are welcome", audio_ms=1000, drop_after_chunks=1),
    ]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ResponseDone, 1)
    await caller_turn(brain)
    # the drop cuts the second reply; the engine reconnects and asks for the reply again
    await outs.until(lambda o: any("ten" in t.text for t in o.of(AgentText) if t.final))
    assert len(fake.conns) == 2 and brain.stats["reconnects"] == 1
    replay = fake.conns[1].items
    texts = [(i["role"], i["content"][0]["text"]) for i in replay if i["type"] == "message"]
    assert texts == [
        ("user", "What time do you open?"),
        ("assistant", "We open at nine."),
        ("user", "And on Sunday?"),
    ]
    assert replay[1]["content"][0]["type"] == "output_text"
    assert fake.conns[1].session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    # a second drop has no reconnect left: the call gets a clean engine_error
    await caller_turn(brain)
    await outs.until(lambda o: o.ended)
    failure = outs.of(BrainFailure)[-1]
    assert failure.code == "engine_error" and failure.fatal
    assert len(fake.conns) == 2
    await brain.close()


async def test_stalled_response_counts_as_a_drop(fake: FakeOpenAIRealtime) -> None:
    fake.replies = [Reply(audio_ms=1000, stall_after_chunks=1), Reply(text="Back again.")]
    brain = engine(fake, response_timeout_s=0.3)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.until(lambda o: any(t.final and t.text == "Back again." for t in o.of(AgentText)))
    assert brain.stats["reconnects"] == 1
    await brain.close()
    await outs.stop()


async def test_stalled_session_update_fails_cleanly(fake: FakeOpenAIRealtime) -> None:
    fake.stall_session = True
    brain = engine(fake, connect_timeout_s=0.3)
    await brain.start(ctx())
    outs = Outputs(brain)
    await outs.until(lambda o: o.ended)
    assert outs.of(BrainFailure)[0].code == "engine_error"
    await brain.close()


async def test_unreachable_endpoint_fails_cleanly() -> None:
    brain = OpenAIRealtime(api_key=KEY, base_url="ws://127.0.0.1:9/v1/realtime")
    await brain.start(ctx())
    outs = Outputs(brain)
    await outs.until(lambda o: o.ended)
    assert outs.of(BrainFailure)[0].code == "engine_error"
    await brain.close()


async def test_malformed_events_are_skipped(fake: FakeOpenAIRealtime) -> None:
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await brain._handle({"type": "response.output_audio.delta", "delta": "%%%not base64"})
    await brain._handle({"type": "response.function_call_arguments.done", "arguments": "{bad"})
    await outs.count(ToolRequest, 1)
    assert outs.of(ToolRequest)[0].arguments == {}
    assert not outs.of(AgentAudio)
    await brain.close()
    await outs.stop()


async def test_rollover_before_cap_replays_conversation(fake: FakeOpenAIRealtime) -> None:
    fake.caller_says = ["My name is Ada."]
    fake.replies = [Reply(text="Nice to meet you, Ada."), Reply(text="Still here.")]
    brain = engine(fake, session_cap_s=1.0, rollover_margin_s=0.6)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ResponseDone, 1)
    await fake.until(lambda f: len(f.conns) >= 2 and bool(f.conns[1].items))
    await fake.until(lambda f: f.conns[0].closed)
    assert brain.stats["rollovers"] >= 1
    texts = [i["content"][0]["text"] for i in fake.conns[1].items if i["type"] == "message"]
    assert texts[:2] == ["My name is Ada.", "Nice to meet you, Ada."]
    # the caller keeps talking on the new session, unaware
    await caller_turn(brain)
    await outs.until(lambda o: any(t.final and t.text == "Still here." for t in o.of(AgentText)))
    assert not outs.of(BrainFailure)
    await brain.close()
    await outs.stop()


def test_usage_units_beta_without_cached_details() -> None:
    usage = {
        "input_token_details": {"text_tokens": 100, "audio_tokens": 40, "cached_tokens": 30},
        "output_token_details": {"text_tokens": 5, "audio_tokens": 20},
    }
    units = usage_units(usage)
    assert units["realtime_text_input_tokens"] == 70
    assert units["realtime_cached_text_tokens"] == 30
    assert units["realtime_audio_output_tokens"] == 20
    assert usage_units({}) == dict.fromkeys(units, 0.0)
