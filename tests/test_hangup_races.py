"""A hang-up at any moment of an outbound call's set-up ends the call and records it.

Each stage is reached (not slept for) before the hang-up, over Twilio and Telnyx,
through the API and as the carrier's own hang-up. The session-level test pins the
order that once left a call live forever: the hang-up, then a late AMD verdict.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from patter_core.events import CallEnded
from patter_core.session.config import AgentConfig, CallInfo
from tests.carrier_harness import CarrierRig, carrier_rig
from tests.session_harness import start_call

STAGES = ("dialled", "answered", "streaming", "amd")


@pytest.fixture(params=["twilio", "telnyx"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


async def _reach(rig: CarrierRig, call_id: str, stage: str) -> None:
    assert rig.phone.server is not None
    record = rig.phone.server.registry.get(call_id)
    assert record is not None
    if stage == "answered":
        if rig.carrier.name == "telnyx":
            await _until(lambda: record.answered)
        else:
            await _until(lambda: rig.sim.requests_of("create_call") and record.carrier_call_id)
    elif stage == "streaming":
        await rig.next_event("call.answered")
    elif stage == "amd":
        await rig.next_event("amd.result")


def _sim_kwargs(kind: str) -> dict[str, Any]:
    # A machine that never beeps: the session is left waiting on AMD.
    if kind == "twilio":
        return {"answered_by": "machine_start", "amd_delay_s": 0.05}
    return {"amd_result": "machine", "greeting_result": None, "amd_delay_s": 0.05}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("by", ["api", "carrier"])
async def test_hangup_at_each_setup_stage_ends_and_records_the_call(
    kind: str, stage: str, by: str
) -> None:
    if by == "carrier" and stage == "dialled":
        pytest.skip("the carrier's own hang-up needs an answered call")
    async with carrier_rig(kind, **_sim_kwargs(kind)) as rig:
        call_id = await rig.phone.call(to="+15550004444")
        await _reach(rig, call_id, stage)
        assert rig.phone.server is not None
        record = rig.phone.server.registry.get(call_id)
        assert record is not None
        if by == "api":
            await asyncio.wait_for(rig.phone.hangup(call_id), 10)
        elif kind == "telnyx":
            await rig.sim.end_call(record.carrier_call_id)
        else:
            stream = await rig.carrier.outbound_stream(call_id, rig.phone)
            await stream.hangup()
        ended = await rig.next_event("call.ended")
        assert isinstance(ended, CallEnded) and ended.call_id == call_id
        assert ended.status in ("completed", "normal_clearing", "canceled", "interrupted")
        await _until(lambda: not rig.phone.server.registry.live())  # type: ignore[union-attr]
        assert not rig.phone.sessions
        stream = rig.sim.streams.get(record.carrier_call_id)
        if stream is not None:  # a stream opened for the dead call does not stay up
            await asyncio.wait_for(stream.wait_closed(), 10)
        await asyncio.sleep(0.2)
        later = [e for e in rig.drain() if e.type == "call.ended" and e.call_id == call_id]
        assert not later, "recorded once"


async def test_hangup_then_late_amd_verdict_still_ends_the_session() -> None:
    """The stuck order: hang-up webhook, then the AMD verdict, before the brain is up."""
    call = await start_call(
        AgentConfig(first_message="Hi there."),
        CallInfo(
            "call-1",
            direction="outbound",
            caller="+15550001111",
            callee="+15550002222",
            amd_pending=True,
        ),
    )
    call.session.end("hangup")
    await asyncio.wait_for(call.session.on_amd("human"), 5)
    await asyncio.wait_for(call.session.on_amd("machine_end_beep"), 5)
    summary = await asyncio.wait_for(call.task, 10)
    assert summary["reason"] == "hangup"
    assert summary["amd"]["result"] == "human"
    assert call.controls.hangups == 0  # the late verdict acts on nothing
