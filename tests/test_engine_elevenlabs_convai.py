"""ElevenLabsConvAI as a Brain against the local fake ConvAI server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from patter_core.audio.formats import MULAW_8K, PCM16_16K, AudioFormat, Encoding
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
from patter_core.engines.elevenlabs_convai import ElevenLabsConvAI, parse_format
from patter_core.engines.errors import EngineError
from tests.engine_helpers import Outputs
from tests.fakes.elevenlabs_convai import FakeElevenLabsConvAI, Reply

KEY = "xi-test-key"
SPEECH = bytes([0x10]) * 160
SILENCE = bytes([0xFF]) * 160


def ctx(first_message: str = "") -> BrainContext:
    return BrainContext(
        call_id="CA1",
        caller="+15550001",
        callee="+15550002",
        direction="inbound",
        system_prompt="You are the front desk.",
        first_message=first_message,
        voice="voice_abc",
        carrier_format=MULAW_8K,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeElevenLabsConvAI]:
    async with FakeElevenLabsConvAI(key=KEY) as server:
        yield server


def engine(fake: FakeElevenLabsConvAI, **kw: object) -> ElevenLabsConvAI:
    kw.setdefault("api_key", KEY)
    kw.setdefault("agent_id", fake.agent_id)
    kw.setdefault("reply_idle_s", 0.2)
    return ElevenLabsConvAI(base_url=fake.base_url, **kw)  # type: ignore[arg-type]


async def caller_turn(brain: ElevenLabsConvAI) -> None:
    for _ in range(3):
        await brain.push_audio(SPEECH)
    await brain.push_audio(SILENCE)


async def test_start_sends_overrides_through_a_signed_url(fake: FakeElevenLabsConvAI) -> None:
    brain = engine(fake, language="en")
    assert isinstance(brain, Brain)
    await brain.start(ctx(first_message="Thanks for calling Ada's."))
    assert fake.signed_requests[0]["xi-api-key"] == KEY
    conn = fake.conns[0]
    assert conn.query["conversation_signature"]
    init = conn.initiation
    assert init["type"] == "conversation_initiation_client_data"
    override = init["conversation_config_override"]
    assert override["agent"] == {
        "prompt": {"prompt": "You are the front desk."},
        "first_message": "Thanks for calling Ada's.",
        "language": "en",
    }
    assert override["tts"] == {"voice_id": "voice_abc"}
    assert brain.input_format == MULAW_8K and brain.output_format == MULAW_8K
    assert brain.conversation_id == "conv_1"
    outs = Outputs(brain)
    await outs.count(ResponseDone, 1)
    assert outs.of(AgentText)[0].text == "Thanks for calling Ada's."
    await brain.close()
    await outs.stop()


async def test_formats_come_from_the_agent(fake: FakeElevenLabsConvAI) -> None:
    fake.input_format = "pcm_16000"
    fake.output_format = "pcm_22050"
    brain = engine(fake)
    await brain.start(ctx())
    assert brain.input_format == PCM16_16K
    assert brain.output_format == AudioFormat(Encoding.PCM16, 22050)
    await brain.close()


async def test_turn_with_transcripts_audio_pings_and_minutes(fake: FakeElevenLabsConvAI) -> None:
    fake.first_message = ""
    fake.caller_says = ["I need a table for two."]
    fake.replies = [Reply(text="For what time?", audio_ms=300)]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ResponseDone, 1)
    assert outs.of(CallerText) == [CallerText("I need a table for two.", final=True)]
    audio = outs.of(AgentAudio)
    assert sum(len(a.payload) for a in audio) == 300 * 8
    rid = audio[0].response_id
    assert outs.of(AgentText) == [AgentText("For what time?", final=True, response_id=rid)]
    done = outs.of(ResponseDone)[0]
    assert done.response_id == rid and done.usage["convai_seconds"] > 0
    conn = fake.conns[0]
    assert conn.audio_bytes == 4 * 160
    assert all("type" not in e for e in conn.received if "user_audio_chunk" in e)
    await fake.until(lambda f: len(f.conns[0].pongs) >= 2)
    assert conn.pongs == sorted(conn.pongs)
    await brain.close()
    await outs.stop()


async def test_client_tool_round_trip(fake: FakeElevenLabsConvAI) -> None:
    fake.first_message = ""
    fake.replies = [
        Reply(tool="transfer_call", parameters={"number": "+15550100"}),
        Reply(text="Transferring you now."),
    ]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ToolRequest, 1)
    req = outs.of(ToolRequest)[0]
    assert req.name == "transfer_call" and req.arguments == {"number": "+15550100"}
    await brain.send_tool_result(req.tool_call_id, {"status": "ok"})
    await outs.until(lambda o: any(t.text == "Transferring you now." for t in o.of(AgentText)))
    result = fake.conns[0].tool_results[0]
    assert result["tool_call_id"] == req.tool_call_id
    assert json.loads(result["result"]) == {"status": "ok"} and result["is_error"] is False
    await brain.send_tool_result("tc_x", {"error": "boom"})
    await fake.until(lambda f: len(f.conns[0].tool_results) == 2)
    assert fake.conns[0].tool_results[1]["is_error"] is True
    await brain.close()
    await outs.stop()


async def test_interruption_drops_old_audio_and_corrects_text(fake: FakeElevenLabsConvAI) -> None:
    fake.first_message = ""
    fake.replies = [Reply(text="one two three four five six", audio_ms=3000, pace_s=0.02)]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(AgentAudio, 3)
    await brain.push_audio(SPEECH)  # the caller cuts in
    await outs.count(CallerSpeech, 1)
    await outs.until(lambda o: len(o.of(AgentText)) >= 2)
    first = outs.of(AgentAudio)[0].response_id
    corrected = outs.of(AgentText)[-1]
    assert corrected.final and corrected.response_id == first
    assert len(corrected.text) < len("one two three four five six")
    assert outs.of(ResponseDone)[0].response_id == first
    assert brain.history.entries[-1].text == corrected.text
    # late audio from before the interruption is not played
    heard = len(outs.of(AgentAudio))
    brain._on_audio({"audio_base_64": "VVVV", "event_id": 1})
    assert len(outs.of(AgentAudio)) == heard
    await brain.close()
    await outs.stop()


async def test_say_asks_the_agent_to_speak_verbatim(fake: FakeElevenLabsConvAI) -> None:
    fake.first_message = ""
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await brain.say("We close at 9 pm.")
    await outs.count(ResponseDone, 1)
    assert outs.of(AgentText)[0].text == "We close at 9 pm."
    await brain.close()
    await outs.stop()


async def test_refused_key(fake: FakeElevenLabsConvAI) -> None:
    brain = engine(fake, api_key="xi-wrong-key-999")
    await brain.start(ctx())
    outs = Outputs(brain)
    await outs.until(lambda o: o.ended)
    failure = outs.of(BrainFailure)[0]
    assert failure.code == "auth_failed" and failure.fatal
    assert "xi-wrong-key-999" not in failure.message
    assert not fake.conns


async def test_rate_limited(fake: FakeElevenLabsConvAI) -> None:
    fake.rate_limited = True
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await outs.until(lambda o: o.ended)
    assert outs.of(BrainFailure)[0].code == "rate_limited"


async def test_public_agent_needs_no_key(
    fake: FakeElevenLabsConvAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    fake.public = True
    brain = engine(fake, api_key=None)
    await brain.start(ctx())
    assert not fake.signed_requests and len(fake.conns) == 1
    await brain.close()


def test_agent_id_from_env_or_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ELEVENLABS_AGENT_ID", raising=False)
    with pytest.raises(EngineError):
        ElevenLabsConvAI(api_key="k")
    monkeypatch.setenv("ELEVENLABS_AGENT_ID", "agent_env")
    assert ElevenLabsConvAI(api_key="k").agent_id == "agent_env"


async def test_stall_before_metadata_fails_cleanly(fake: FakeElevenLabsConvAI) -> None:
    fake.stall = True
    brain = engine(fake, connect_timeout_s=0.3)
    await brain.start(ctx())
    outs = Outputs(brain)
    await outs.until(lambda o: o.ended)
    assert outs.of(BrainFailure)[0].code == "engine_error"


async def test_drop_reconnects_once_with_context_then_fails(fake: FakeElevenLabsConvAI) -> None:
    fake.first_message = ""
    fake.caller_says = ["Do you deliver?", "To Brooklyn?", "OK"]
    fake.replies = [
        Reply(text="Yes, we deliver."),
        Reply(text="Let me check", audio_ms=1000, drop_after_chunks=1),
        Reply(text="Yes, Brooklyn too."),
        Reply(text="Bye", audio_ms=1000, drop_after_chunks=1),
    ]
    brain = engine(fake)
    await brain.start(ctx())
    outs = Outputs(brain)
    await caller_turn(brain)
    await outs.count(ResponseDone, 1)
    await caller_turn(brain)
    await fake.until(lambda f: len(f.conns) == 2 and bool(f.conns[1].contextual_updates))
    second = fake.conns[1]
    assert second.initiation["conversation_config_override"]["agent"]["first_message"] == ""
    context = second.contextual_updates[0]
    assert "Caller: Do you deliver?" in context
    assert "Agent: Yes, we deliver." in context
    assert "Caller: To Brooklyn?" in context
    assert brain.stats["reconnects"] == 1
    await caller_turn(brain)  # answered on the new connection
    await outs.until(lambda o: any(t.text == "Yes, Brooklyn too." for t in o.of(AgentText)))
    await caller_turn(brain)  # this reply drops the socket again
    await outs.until(lambda o: o.ended)
    failure = outs.of(BrainFailure)[-1]
    assert failure.code == "engine_error" and failure.fatal
    assert len(fake.conns) == 2
    await brain.close()


def test_parse_format() -> None:
    assert parse_format("ulaw_8000") == MULAW_8K
    assert parse_format("pcm_16000") == PCM16_16K
    assert parse_format("opus_48000") is None
    assert parse_format("garbage") is None


async def test_agent_greeting_is_overridden_unless_asked_for(fake: FakeElevenLabsConvAI) -> None:
    brain = engine(fake)
    await brain.start(ctx())  # the session greets through say(), so the agent must not
    assert fake.conns[0].initiation["conversation_config_override"]["agent"]["first_message"] == ""
    await brain.close()
    kept = engine(fake, agent_greeting=True).create_brain()
    await kept.start(ctx())
    assert "first_message" not in fake.conns[1].initiation["conversation_config_override"]["agent"]
    await kept.close()
