import asyncio
import json
from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patter_core.bus import EventBus, Gap
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
    LatencyParts,
    RecordingReady,
    ToolCalled,
    ToolResult,
    Transcript,
    TurnMetrics,
    parse_event,
)

SAMPLES = [
    CallStarted(call_id="c1", direction="inbound", caller="+15550001111", callee="+15550002222"),
    CallAnswered(call_id="c1"),
    CallEnded(call_id="c1", reason="hangup", duration_s=12.5),
    Transcript(call_id="c1", role="agent", text="Hello", final=True, interrupted=True),
    TurnMetrics(
        call_id="c1",
        turn=2,
        latency=LatencyParts(end_of_speech_to_first_audio_ms=420.0),
        cost=CostParts(carrier=0.0085, llm=0.001, units={"llm_tokens": 120}),
    ),
    ToolCalled(call_id="c1", tool_call_id="t1", name="lookup", arguments={"id": 3}),
    ToolResult(call_id="c1", tool_call_id="t1", name="lookup", result={"ok": True}),
    Dtmf(call_id="c1", digit="5"),
    AmdResult(call_id="c1", result="machine_end_beep", machine=True, detection_ms=3100),
    BargeIn(call_id="c1", heard_ms=1240, detect_to_clear_ms=310),
    GuardrailTriggered(call_id="c1", name="no-legal", original="sue", replacement="no"),
    RecordingReady(call_id="c1", url="https://x/RE1", recording_id="RE1"),
    ErrorEvent(call_id="c1", code="engine_error", message="socket dropped"),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_json_round_trip_gives_same_model(event):
    back = parse_event(event.model_dump_json())
    assert type(back) is type(event)
    assert back == event
    assert back.ts.tzinfo is not None and back.ts.utcoffset() == UTC.utcoffset(None)


def test_unknown_type_is_rejected():
    with pytest.raises(ValueError):
        parse_event('{"type":"nope","call_id":"c"}')


# Built from lists: st.text() with a union alphabet quietly drops surrogates.
_ANY_TEXT = st.lists(
    st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    max_size=200,
).map("".join)


@given(_ANY_TEXT, st.booleans(), st.booleans())
def test_transcript_round_trip_any_text(text, final, interrupted):
    """Any text, lone surrogates included: vendors' JSON can carry them."""
    ev = Transcript(call_id="c", role="caller", text=text, final=final, interrupted=interrupted)
    assert parse_event(ev.model_dump_json()) == ev


async def test_bus_stamps_per_call_monotonic_seq():
    bus = EventBus()
    sub = bus.subscribe()
    for i in range(5):
        bus.publish(Dtmf(call_id="a", digit=str(i)))
        bus.publish(Dtmf(call_id="b", digit=str(i)))
    bus.publish(CallEnded(call_id="a"))
    bus.publish(RecordingReady(call_id="a"))  # arrives after the end: seq keeps rising
    seen: dict[str, list[int]] = {}
    while (item := sub.get_nowait()) is not None:
        assert not isinstance(item, Gap)
        seen.setdefault(item.call_id, []).append(item.seq)
    assert seen["a"] == list(range(1, 8))
    assert seen["b"] == list(range(1, 6))


async def test_stuck_subscriber_never_blocks_publisher_and_is_told_what_it_missed():
    bus = EventBus()
    stuck = bus.subscribe(maxsize=10, name="stuck")
    live = bus.subscribe(maxsize=10_000, name="live")
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(5000):
        bus.publish(Dtmf(call_id="c", digit=str(i % 10)))
    assert loop.time() - started < 5  # publish is synchronous and never awaited
    assert live.qsize() == 5000
    received = 0
    gaps = 0
    while (item := stuck.get_nowait()) is not None:
        if isinstance(item, Gap):
            gaps += item.missed
        else:
            received += 1
    assert received + gaps == 5000
    assert gaps == stuck.missed_total > 0
    assert bus.dropped_total == gaps


async def test_gap_is_reported_before_newer_events():
    bus = EventBus()
    sub = bus.subscribe(maxsize=3)
    for i in range(6):
        bus.publish(Dtmf(call_id="c", digit=str(i)))
    first = [await sub.get() for _ in range(3)]
    assert [getattr(e, "digit", None) for e in first] == ["0", "1", "2"]
    gap = await sub.get()
    assert gap == Gap(3)
    bus.publish(Dtmf(call_id="c", digit="9"))
    nxt = await sub.get()
    assert not isinstance(nxt, Gap) and nxt.seq == 7


async def test_call_filter_and_close_ends_iteration():
    bus = EventBus()
    sub = bus.subscribe(call_id="x")
    bus.publish(Dtmf(call_id="y", digit="1"))
    bus.publish(Dtmf(call_id="x", digit="2"))
    sub.close()
    items = [item async for item in sub]
    assert [i.call_id for i in items if not isinstance(i, Gap)] == ["x"]
    assert bus.subscriber_count == 0


async def test_waiting_reader_wakes_on_publish():
    bus = EventBus()
    sub = bus.subscribe()
    reader = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    bus.publish(CallAnswered(call_id="z"))
    item = await asyncio.wait_for(reader, 1)
    assert not isinstance(item, Gap) and item.type == "call.answered"


def test_text_that_cannot_be_utf8_is_made_writable_at_construction():
    """json.loads lets lone surrogates through (orjson and pydantic's JSON
    parser refuse them); an event built from such data must still serialise."""
    data = json.loads(
        '{"type": "tool.called", "call_id": "a", "tool_call_id": "t", "name": "n",'
        ' "arguments": {"q": "\\ud83d", "list": ["ok", "x\\udc00y"], "n": 1}}'
    )
    event = parse_event(data)
    assert isinstance(event, ToolCalled)
    assert event.arguments == {"q": "\ufffd", "list": ["ok", "x\ufffdy"], "n": 1}
    assert parse_event(event.model_dump_json()) == event
    plain = Transcript(call_id="a", role="caller", text="déjà vu")
    assert plain.text == "déjà vu"
