"""OpenTelemetry spans from call events, exported to an in-memory exporter."""

from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from patter_core.events import (
    BargeIn,
    CallEnded,
    CallStarted,
    CostParts,
    LatencyParts,
    TurnMetrics,
)
from patter_core.tracing import CallTracer


def _tracer():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return CallTracer(provider), exporter


def test_one_span_per_call_and_a_child_per_turn():
    tracer, exporter = _tracer()
    t0 = datetime(2026, 11, 23, 12, tzinfo=UTC)
    tracer.observe(CallStarted(call_id="c1", direction="inbound", agent="desk", ts=t0))
    tracer.observe(
        TurnMetrics(
            call_id="c1",
            turn=1,
            latency=LatencyParts(end_of_speech_to_first_heard_ms=640.0, llm_first_token_ms=210.0),
            cost=CostParts(llm=0.002),
            ts=t0 + timedelta(seconds=5),
        )
    )
    tracer.observe(
        BargeIn(call_id="c1", heard_ms=900, detect_to_clear_ms=310, ts=t0 + timedelta(seconds=6))
    )
    tracer.observe(
        CallEnded(
            call_id="c1",
            reason="hangup",
            duration_s=10,
            cost=CostParts(carrier=0.0085),
            ts=t0 + timedelta(seconds=10),
        )
    )
    spans = {s.name: s for s in exporter.get_finished_spans()}
    call, turn = spans["call"], spans["turn"]
    assert turn.parent is not None and turn.parent.span_id == call.context.span_id
    assert turn.attributes["patter.latency.llm_first_token_ms"] == 210.0
    assert (turn.end_time - turn.start_time) == 640_000_000
    assert (
        call.attributes["patter.agent"] == "desk" and call.attributes["patter.reason"] == "hangup"
    )
    assert (call.end_time - call.start_time) == 10_000_000_000
    assert [e.name for e in call.events] == ["barge_in"]


def test_failed_calls_are_marked_and_unfinished_ones_closed_on_shutdown():
    tracer, exporter = _tracer()
    tracer.observe(CallStarted(call_id="bad", direction="outbound"))
    tracer.observe(CallEnded(call_id="bad", reason="engine_error", status="engine_error"))
    tracer.observe(CallStarted(call_id="open", direction="inbound"))
    tracer.observe(TurnMetrics(call_id="unknown", turn=1))  # no span: ignored, no crash
    tracer.close()
    spans = exporter.get_finished_spans()
    bad = next(s for s in spans if s.attributes["patter.call_id"] == "bad")
    assert bad.status.status_code == StatusCode.ERROR
    still = next(s for s in spans if s.attributes["patter.call_id"] == "open")
    assert still.attributes["patter.unfinished"] is True
