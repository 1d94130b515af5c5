"""Tools, guardrails, DTMF, AMD, transfer, end_call, failures and costs through a CallSession."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from patter_core.brain import (
    AgentText,
    BrainFailure,
    CallerText,
    ToolRequest,
)
from patter_core.events import CostParts
from patter_core.guardrails import guardrail
from patter_core.pricing import Pricing
from patter_core.session.callbacks import CallbackRunner
from patter_core.session.config import AgentConfig, CallInfo
from patter_core.tools import Tool, ToolContext, tool
from tests.fakes.audio import mulaw, silence
from tests.fakes.scripted_brain import AGENT_SAMPLE, ScriptedBrain, reply
from tests.session_harness import Call, start_call


async def _wait(call: Call, type_: str, n: int = 1) -> list[Any]:
    for _ in range(500):
        found = call.events(type_)
        if len(found) >= n:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {type_} event")


async def test_first_message_and_turn_transcripts() -> None:
    call = await start_call(AgentConfig(first_message="Hello, Acme here."))
    assert call.brain.said == ["Hello, Acme here."]
    await call.leg.feed(mulaw(silence(1000)))
    await call.brain.emit(CallerText("what are your hours", final=True))
    await call.brain.emit(*reply("r2", "Nine to five.", 500))
    await call.leg.feed(mulaw(silence(600)))
    summary = await call.end()
    lines = [(t["role"], t["text"], t["turn"]) for t in summary["transcript"]]
    assert lines == [
        ("agent", "Hello, Acme here.", 0),
        ("caller", "what are your hours", 1),
        ("agent", "Nine to five.", 1),
    ]
    (ended,) = call.events("call.ended")
    assert ended.reason == "hangup"
    assert ended.turns == 1


async def test_dtmf_reaches_brain_and_events() -> None:
    call = await start_call()
    await call.leg.dtmf("5")
    await call.leg.dtmf("#")
    assert call.brain.dtmf == ["5", "#"]
    assert [e.digit for e in call.events("dtmf")] == ["5", "#"]
    await call.end()


async def test_tool_round_trip_with_named_params_and_ctx() -> None:
    seen: list[ToolContext] = []

    @tool
    async def lookup_order(order_id: str, ctx: ToolContext) -> dict[str, str]:
        """Look up an order.

        Args:
            order_id: The order number.
        """
        seen.append(ctx)
        return {"order_id": order_id, "status": "shipped"}

    def legacy(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:  # sync handler
        return {"echo": args["x"], "caller": ctx["caller"]}

    agent = AgentConfig(tools=[lookup_order, Tool("legacy", "Echo.", handler=legacy)])
    call = await start_call(agent)
    assert call.brain.ctx is not None
    assert [t.name for t in call.brain.ctx.tools] == [
        "lookup_order",
        "legacy",
        "transfer_call",
        "end_call",
    ]
    await call.brain.emit(ToolRequest("t1", "lookup_order", {"order_id": "A7"}))
    await call.brain.emit(ToolRequest("t2", "legacy", {"x": 3}))
    results = await _wait(call, "tool.result", 2)
    assert dict(call.brain.tool_results) == {
        "t1": {"order_id": "A7", "status": "shipped"},
        "t2": {"echo": 3, "caller": "+15550001111"},
    }
    assert seen[0]["call_id"] == "call-1"
    assert all(r.error is None for r in results)
    assert [e.name for e in call.events("tool.called")] == ["lookup_order", "legacy"]
    await call.end()


async def test_tool_that_raises_or_times_out_returns_error() -> None:
    async def broken(args: dict[str, Any], ctx: ToolContext) -> None:
        raise KeyError("no such customer")

    async def slow(args: dict[str, Any], ctx: ToolContext) -> None:
        await asyncio.sleep(30)

    agent = AgentConfig(
        tools=[Tool("broken", handler=broken), Tool("slow", handler=slow, timeout_s=0.05)]
    )
    call = await start_call(agent)
    await call.brain.emit(ToolRequest("t1", "broken", {}))
    await call.brain.emit(ToolRequest("t2", "slow", {}))
    await call.brain.emit(ToolRequest("t3", "nope", {}))
    results = {r.tool_call_id: r for r in await _wait(call, "tool.result", 3)}
    assert "no such customer" in (results["t1"].error or "")
    assert "timed out" in (results["t2"].error or "")
    assert "unknown tool" in (results["t3"].error or "")
    sent = dict(call.brain.tool_results)
    assert set(sent) == {"t1", "t2", "t3"}
    assert all("error" in v for v in sent.values())
    assert not call.task.done()  # the call carries on
    await call.end()


@pytest.fixture
async def webhook_server() -> Any:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        received.append(body)
        if request.path == "/big":
            return web.Response(body=b"x" * 200_000)
        if request.path == "/fail":
            return web.Response(status=500)
        return web.json_response({"slots": ["10:00", "11:30"], "got": body["arguments"]})

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


async def test_webhook_tool_round_trip_and_refusals(webhook_server: Any) -> None:
    base, received = webhook_server
    allow = frozenset({"127.0.0.1"})
    agent = AgentConfig(
        tools=[
            Tool("slots", "Free slots.", webhook_url=f"{base}/slots", allow_hosts=allow),
            Tool("big", webhook_url=f"{base}/big", allow_hosts=allow, max_response_bytes=1024),
            Tool("fail", webhook_url=f"{base}/fail", allow_hosts=allow),
            Tool("private", webhook_url=f"{base}/slots"),  # loopback, not allow-listed
        ]
    )
    call = await start_call(agent)
    for i, name in enumerate(["slots", "big", "fail", "private"]):
        await call.brain.emit(ToolRequest(f"t{i}", name, {"day": "monday"}))
    results = {r.name: r for r in await _wait(call, "tool.result", 4)}
    assert results["slots"].result == {"slots": ["10:00", "11:30"], "got": {"day": "monday"}}
    assert received[0]["call_id"] == "call-1"
    assert "larger than 1024" in (results["big"].error or "")
    assert "HTTP 500" in (results["fail"].error or "")
    assert "non-public" in (results["private"].error or "")
    assert len(received) == 3  # the refused target was never contacted
    await call.end()


async def test_guardrail_replaces_blocked_reply() -> None:
    g = guardrail(name="no-legal", blocked_terms=["lawsuit"], replacement="I can't advise on that.")
    call = await start_call(AgentConfig(guardrails=[g]))
    await call.brain.emit(AgentText("You could file a ", final=False, response_id="r1"))
    await call.brain.emit(*reply("r1", "", 1000, done=False)[1:])
    await call.brain.emit(AgentText("lawsuit against them", final=False, response_id="r1"))
    (trig,) = call.events("guardrail.triggered")
    assert trig.name == "no-legal"
    assert "lawsuit" in trig.original
    assert call.brain.said == ["I can't advise on that."]
    assert len(call.brain.interrupts) == 1
    assert len(call.leg.clears) == 1
    await call.leg.feed(mulaw(silence(2000)))
    texts = [t.text for t in call.events("transcript") if t.role == "agent"]
    assert texts == ["I can't advise on that."]
    assert not any("lawsuit" in t for t in texts)
    await call.end()


async def test_transfer_call_and_bad_number() -> None:
    call = await start_call()
    await call.brain.emit(ToolRequest("t1", "transfer_call", {"number": "555"}))
    (bad,) = await _wait(call, "tool.result")
    assert "E.164" in (bad.error or "")
    await call.brain.emit(ToolRequest("t2", "transfer_call", {"number": "+15550001111"}))
    summary = await asyncio.wait_for(call.task, 10)
    assert call.controls.transfers == ["+15550001111"]
    assert summary["reason"] == "transferred"
    assert len(call.events("call.ended")) == 1


async def test_end_call_lets_goodbye_finish_then_hangs_up() -> None:
    brain = ScriptedBrain(on_tool_result=lambda _id, _r: reply("bye", "Goodbye!", 600))
    call = await start_call(brain=brain)
    await call.brain.emit(ToolRequest("t1", "end_call", {}))
    await _wait(call, "tool.result")
    assert call.controls.hangups == 0
    await call.leg.feed(mulaw(silence(300)))
    assert call.controls.hangups == 0  # goodbye still playing
    await call.leg.feed(mulaw(silence(400)))
    summary = await asyncio.wait_for(call.task, 10)
    assert call.controls.hangups == 1
    assert summary["reason"] == "agent_hangup"
    assert bytes(call.leg.played) == AGENT_SAMPLE * 4800


async def test_amd_machine_leaves_voicemail_then_hangs_up() -> None:
    fired: list[dict[str, object]] = []
    agent = AgentConfig(
        first_message="Hi, this is Acme.",
        voicemail_message="Please call us back.",
        greet_before_amd=False,
    )
    info = CallInfo("call-1", direction="outbound", amd_pending=True)
    call = await start_call(agent, info, on_machine_detection=fired.append)
    assert call.brain.said == []  # greeting waits for the verdict
    await call.leg.feed(mulaw(silence(400)))
    await call.session.on_amd("machine_end_beep")
    await call.session.on_amd("machine_end_beep")
    await call.brain.settle()
    assert call.brain.said == ["Please call us back."]
    await call.leg.feed(mulaw(silence(1000)))
    await call.leg.feed(mulaw(silence(200)))
    summary = await asyncio.wait_for(call.task, 10)
    assert summary["reason"] == "voicemail"
    assert call.controls.hangups == 1
    assert len(fired) == 1 and fired[0]["machine"] is True
    (amd,) = call.events("amd.result")
    assert amd.detection_ms == pytest.approx(400)
    assert summary["amd"]["result"] == "machine_end_beep"


async def test_amd_human_greets_after_verdict() -> None:
    agent = AgentConfig(first_message="Hi!", greet_before_amd=False)
    info = CallInfo("call-1", direction="outbound", amd_pending=True)
    call = await start_call(agent, info)
    await call.session.on_amd("human")
    assert call.brain.said == ["Hi!"]
    await call.end()


async def test_brain_fatal_failure_apologises_then_ends_call_once() -> None:
    from patter_core.audio.formats import MULAW_8K
    from patter_core.session.apology import apology_clip
    from patter_core.session.config import DEFAULT_APOLOGY
    from tests.fakes.memory_leg import settle

    clip = await apology_clip(DEFAULT_APOLOGY, MULAW_8K)
    call = await start_call()
    lookup = reply("r1", "Let me look that up for you.", 2000, done=False)
    await call.brain.emit(*lookup, wait=False)
    await call.brain.emit(BrainFailure("upstream", "socket closed", fatal=True), wait=False)
    await settle(lambda: bytes(call.leg.sent).endswith(clip))
    assert call.leg.clears, "the broken reply's queued audio was flushed first"
    assert not call.task.done(), "the call waits for the apology to be heard"
    await call.leg.feed(mulaw(silence(len(clip) // 8 + 500)))  # the caller hears it out
    summary = await asyncio.wait_for(call.task, 10)
    assert summary["reason"] == "engine_error"
    assert bytes(call.leg.played).endswith(clip)
    assert [t["text"] for t in summary["transcript"] if t["role"] == "agent"][-1] == DEFAULT_APOLOGY
    assert len(call.events("call.ended")) == 1
    assert call.brain.closed and call.leg.closed
    assert call.events("error")[0].fatal


async def test_brain_start_failure_and_dropped_leg() -> None:
    brain = ScriptedBrain()
    brain.fail_start = ConnectionError("refused")
    call = await start_call(AgentConfig(apology=""), brain=brain)
    assert (await asyncio.wait_for(call.task, 10))["reason"] == "engine_error"

    call2 = await start_call()
    call2.leg.stop("dropped")
    assert (await asyncio.wait_for(call2.task, 10))["reason"] == "interrupted"


async def test_cost_totals_against_hand_computed_example() -> None:
    pricing = Pricing.with_overrides(
        {
            "carrier_per_minute": 0.01,
            "stt_per_minute": 0.006,
            "llm_input_per_million": 1.0,
            "llm_output_per_million": 2.0,
            "tts_per_thousand_chars": 0.03,
        }
    )
    metrics: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    call = await start_call(AgentConfig(pricing=pricing))
    runner = CallbackRunner(call.bus, on_metrics=metrics.append, on_call_end=ends.append)
    cb_task = asyncio.create_task(runner.run())
    usage = {
        "stt_seconds": 30,
        "llm_input_tokens": 1000,
        "llm_output_tokens": 500,
        "tts_characters": 200,
    }
    await call.brain.emit(*reply("r1", "Sure.", 200, usage=usage))
    await call.leg.feed(mulaw(silence(61_000)))  # 61 s: two started minutes
    await call.brain.emit(*reply("r2", "Bye.", 200, usage=usage))
    await call.leg.feed(mulaw(silence(400)))
    summary = await call.end()
    # Per reply: STT 30/60*0.006=0.003, LLM 1000*1e-6+500*2e-6=0.002, TTS 200/1000*0.03=0.006.
    # Two replies: 0.022; carrier 2 started minutes * 0.01 = 0.02. Total 0.042.
    cost = CostParts.model_validate(summary["cost"])
    assert cost.stt == pytest.approx(0.006)
    assert cost.llm == pytest.approx(0.004)
    assert cost.tts == pytest.approx(0.012)
    assert cost.carrier == pytest.approx(0.02)
    assert summary["total_cost"] == pytest.approx(0.042)
    (ended,) = call.events("call.ended")
    assert ended.cost is not None and ended.cost.total == pytest.approx(0.042)
    turns = call.events("turn.metrics")
    assert len(turns) == 2
    assert turns[1].total_cost > turns[0].total_cost
    lat = turns[0].latency
    assert lat.end_of_speech_to_first_heard_ms is None  # the reply had no caller turn before it
    await asyncio.sleep(0)
    for _ in range(100):
        if ends:
            break
        await asyncio.sleep(0.01)
    runner.close()
    await cb_task
    assert len(metrics) == 2 and metrics[0]["turn"] == 0
    assert ends[0]["call_id"] == "call-1"
    assert [e["text"] for e in ends[0]["transcript"]] == ["Sure.", "Bye."]


async def test_latency_parts_measured_on_playback_clock() -> None:
    call = await start_call()
    await call.leg.feed(mulaw(silence(200)))
    await call.brain.emit(CallerText("hello", final=True))
    from patter_core.brain import CallerSpeech

    await call.brain.emit(CallerSpeech(False))
    await call.leg.feed(mulaw(silence(300)))  # engine thinks for 300 ms
    await call.brain.emit(*reply("r1", "Hi.", 400, usage={}))
    await call.leg.feed(mulaw(silence(500)))
    (m,) = call.events("turn.metrics")
    assert m.latency.end_of_speech_to_first_audio_ms == pytest.approx(300)
    # First mark comes back once the first 100 ms have played (next 20 ms frame boundaries).
    assert 300 < m.latency.end_of_speech_to_first_heard_ms <= 440
    await call.end()


async def test_callback_errors_are_logged_not_fatal() -> None:
    calls: list[str] = []

    async def bad(event: dict[str, Any]) -> None:
        raise RuntimeError("user bug")

    def good(event: dict[str, Any]) -> None:
        calls.append(event["type"])

    call = await start_call(AgentConfig(first_message="Hi."))
    runner = CallbackRunner(call.bus, on_transcript=bad, on_call_end=good)
    task = asyncio.create_task(runner.run())
    await call.leg.feed(mulaw(silence(200)))
    await call.brain.emit(CallerText("hey", final=True))
    await call.end()
    for _ in range(100):
        if calls:
            break
        await asyncio.sleep(0.01)
    runner.close()
    await task
    assert calls == ["call.ended"]
    assert runner.errors >= 1


async def test_reply_audio_is_cut_where_its_marks_fall() -> None:
    """Chunks that do not line up with the 100 ms marks (here 130 ms) are cut at each
    mark, so every marked stretch is whole and can leave as one carrier message."""
    call = await start_call(AgentConfig())
    await call.brain.emit(*reply("r1", "A long answer.", 650, chunk_ms=130))
    await call.leg.feed(mulaw(silence(800)))
    await call.end()
    log = call.leg.wire_log
    stretches, size = [], 0
    for item in log:
        if isinstance(item, str):
            stretches.append(size)
            size = 0
        else:
            size += item
    assert sum(stretches) == 650 * 8  # µ-law: 8 bytes per ms
    assert stretches == [800] * 6 + [400], log  # a mark every 100 ms, then the reply's end
