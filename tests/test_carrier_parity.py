"""The same whole-call scenarios against both carriers: parity is tested, not claimed.

Each scenario runs over real HTTP, real signatures (HMAC for Twilio, Ed25519
for Telnyx) and real WebSockets against the simulated carrier.
"""

import asyncio

import numpy as np
import pytest

from patter_core import AtCapacity, MachineDetectionResult
from patter_core.events import AmdResult, CallEnded, CallStarted
from patter_core.testing import CallRefused
from tests.carrier_harness import CALLER, NUMBER, carrier_rig

CARRIERS = ["twilio", "telnyx"]


async def line_released(rig) -> None:
    """The call's record ends only after our side's hang-up request, if any, is done."""
    server = rig.phone.server
    async with asyncio.timeout(10):
        while server.registry.live():
            await asyncio.sleep(0.02)
    await rig.sim.settle()


def best_snr(sent: np.ndarray, heard: np.ndarray) -> float:
    """SNR of ``heard`` against ``sent`` at the lag where they line up best."""
    n = len(sent)
    best = -np.inf
    for lag in range(0, len(heard) - n + 1):
        err = heard[lag : lag + n] - sent
        best = max(best, 10 * np.log10(np.sum(sent**2) / max(np.sum(err**2), 1e-9)))
    return float(best)


@pytest.fixture(params=CARRIERS)
def kind(request):
    return request.param


async def test_serve_points_the_carrier_at_us(kind):
    async with carrier_rig(kind) as rig:
        hook = f"https://{rig.sim.public_host}/webhooks/{kind}/voice"
        if kind == "twilio":
            assert rig.sim.numbers[NUMBER]["voice_url"] == hook
        else:
            assert rig.sim.applications[rig.sim.connection_id]["webhook_event_url"] == hook


@pytest.mark.parametrize(
    ("kind", "codec"), [("twilio", "PCMU"), ("telnyx", "PCMU"), ("telnyx", "L16")]
)
async def test_inbound_echo_call(kind, codec):
    async with carrier_rig(kind, codec=codec) as rig:
        call = await rig.carrier.inbound_call(CALLER)
        started = await rig.next_event("call.started")
        assert isinstance(started, CallStarted)
        assert (started.caller, started.callee, started.direction, started.carrier) == (
            CALLER,
            NUMBER,
            "inbound",
            kind,
        )
        await rig.next_event("call.answered")
        tone = rig.carrier.tone(0.6)
        await asyncio.sleep(0.2)
        call.say(tone)
        await call.wait_heard(len(tone) * 2, timeout=10)
        trim = len(tone) // 15
        sent = rig.carrier.samples(tone)[trim:-trim]
        heard = rig.carrier.samples(bytes(call.heard))
        # µ-law: two G.711 quantisations and two resamplers; L16 16 kHz: no conversion loss.
        assert best_snr(sent, heard) > (25 if codec == "PCMU" else 60)
        assert call.marks, "agent audio is marked so the session knows what was heard"
        await call.hangup()
        ended = await rig.next_event("call.ended")
        assert isinstance(ended, CallEnded) and ended.reason == "hangup"


async def test_outbound_call_with_amd_reports_the_machine_once(kind):
    verdicts = []
    amd = (
        {"answered_by": "machine_end_beep"}
        if kind == "twilio"
        else {"amd_result": "machine", "greeting_result": "beep_detected"}
    )
    async with carrier_rig(kind, **amd) as rig:
        call_id = await rig.phone.call(to="+15550004444", on_machine_detection=verdicts.append)
        assert rig.carrier.dial() == {"amd": True, "ring_timeout": "25", "record": False}
        started = await rig.next_event("call.started")
        assert started.call_id == call_id and started.direction == "outbound"
        result = await rig.next_event("amd.result")
        assert isinstance(result, AmdResult) and result.machine and result.call_id == call_id
        ended = await rig.next_event("call.ended")
        assert ended.call_id == call_id
        assert len(verdicts) == 1 and isinstance(verdicts[0], MachineDetectionResult)
        assert verdicts[0].machine is True and verdicts[0]["machine"] is True
        assert verdicts[0].call_id == call_id and verdicts[0].result
        later = rig.drain()
        assert not [e for e in later if e.type in ("call.started", "amd.result")], "once each"


async def test_outbound_call_without_amd_or_ring_timeout(kind):
    async with carrier_rig(kind) as rig:
        call_id = await rig.phone.call(
            to="+15550004444", machine_detection=False, ring_timeout=None
        )
        assert rig.carrier.dial() == {"amd": False, "ring_timeout": None, "record": False}
        stream = await rig.carrier.outbound_stream(call_id, rig.phone)
        await rig.next_event("call.answered")
        await stream.hangup()
        assert (await rig.next_event("call.ended")).call_id == call_id


async def test_dtmf_from_the_caller_is_one_event(kind):
    async with carrier_rig(kind) as rig:
        call = await rig.carrier.inbound_call()
        await rig.next_event("call.answered")
        await call.send_dtmf("7")
        dtmf = await rig.next_event("dtmf")
        assert dtmf.digit == "7"  # type: ignore[attr-defined]
        await call.send_dtmf("#")
        assert (await rig.next_event("dtmf")).digit == "#"  # type: ignore[attr-defined]
        assert not [e for e in rig.drain() if e.type == "dtmf"], "Telnyx's webhook copy ignored"


async def test_transfer_reaches_the_carrier_and_ends_our_leg(kind):
    async with carrier_rig(kind) as rig:
        call = await rig.carrier.inbound_call()
        await rig.next_event("call.answered")
        session = next(iter(rig.phone.sessions.values()))
        await session.controls.transfer("+15550003333")
        transfers = rig.carrier.transfers()
        assert len(transfers) == 1 and "+15550003333" in transfers[0]
        await call.wait_closed()
        assert (await rig.next_event("call.ended")).type == "call.ended"


async def test_recording_starts_and_its_callback_becomes_an_event(kind):
    async with carrier_rig(kind, serve_kwargs={"recording": True}) as rig:
        await rig.carrier.inbound_call()
        ready = await rig.next_event("recording.ready")
        assert ready.recording_id and ready.url  # type: ignore[attr-defined]
        assert ready.duration_s == 3  # type: ignore[attr-defined]
        assert rig.carrier.recordings_started() == 1


async def test_an_outbound_call_is_recorded_once(kind):
    """Dialled with recording on, so the carrier is not asked a second time
    once it answers (that made two recordings of every outbound call)."""
    async with carrier_rig(kind, serve_kwargs={"recording": True}) as rig:
        call_id = await rig.phone.call(to="+15550004444", machine_detection=False)
        stream = await rig.carrier.outbound_stream(call_id, rig.phone)
        ready = await rig.next_event("recording.ready")
        assert ready.call_id == call_id and ready.url  # type: ignore[attr-defined]
        assert rig.carrier.dial()["record"] is True
        await stream.hangup()
        await rig.next_event("call.ended")
        assert rig.carrier.recordings_started() == 0
        assert not [e for e in rig.drain() if e.type == "recording.ready"]


class _EngineThatCannotStart:
    """An engine configuration that fails to make a brain (a bad option, say)."""

    def create_brain(self) -> None:
        raise RuntimeError("no such voice: 'zz'")


async def test_a_brain_that_cannot_be_built_apologises_and_is_recorded(kind):
    def broken(phone):
        return phone.agent(engine=_EngineThatCannotStart(), name="broken")

    async with carrier_rig(kind, broken) as rig:
        call = await rig.carrier.inbound_call(CALLER)
        error = await rig.next_event("error")
        assert error.code == "engine_start" and "no such voice" in error.message  # type: ignore[attr-defined]
        ended = await rig.next_event("call.ended")
        assert ended.reason == "engine_error"  # type: ignore[attr-defined]
        await call.wait_closed()
        assert len(call.heard) > 8000, "the caller heard the apology, not silence"
        await line_released(rig)
        # Twilio's call ends with the stream; a Telnyx call must be hung up.
        assert rig.carrier.hangups() == (1 if kind == "telnyx" else 0)


async def test_a_call_our_side_ends_does_not_leave_the_line_up(kind):
    """A shutdown (or a dropped brain) ends the session on our side; on Telnyx
    the call outlived its stream and the caller sat in silence until they hung up."""
    async with carrier_rig(kind) as rig:
        call = await rig.carrier.inbound_call(CALLER)
        await rig.next_event("call.answered")
        session = next(iter(rig.phone.sessions.values()))
        session.end("shutdown")
        ended = await rig.next_event("call.ended")
        assert ended.reason == "shutdown"  # type: ignore[attr-defined]
        await call.wait_closed()
        await line_released(rig)
        assert rig.carrier.hangups() == (1 if kind == "telnyx" else 0)


async def test_agent_side_hangup(kind):
    async with carrier_rig(kind) as rig:
        call = await rig.carrier.inbound_call()
        await rig.next_event("call.answered")
        call_id = next(iter(rig.phone.sessions))
        await rig.phone.hangup(call_id)
        ended = await rig.next_event("call.ended")
        assert ended.call_id == call_id
        assert rig.carrier.hangups() == 1
        await call.wait_closed()


async def test_unanswered_call_ends_from_the_carrier_webhook(kind):
    async with carrier_rig(kind) as rig:
        call_id = await rig.carrier.unanswered(rig.phone)
        ended = await rig.next_event("call.ended")
        assert ended.call_id == call_id and ended.reason == "no_answer"
        assert rig.phone.server is not None and not rig.phone.server.registry.live()


async def test_forged_and_stale_webhooks_are_refused_with_403(kind):
    async with carrier_rig(kind) as rig:
        forged = rig.carrier.forged_webhooks()
        assert len(forged) >= 3
        for label, send in forged.items():
            status, _ = await send()
            assert status == 403, label
        assert rig.phone.server is not None and not rig.phone.server.registry.live()
        assert await rig.carrier.valid_webhook() == 200


async def test_dropped_socket_ends_the_call_as_interrupted(kind):
    async with carrier_rig(kind) as rig:
        call = await rig.carrier.inbound_call()
        await rig.next_event("call.answered")
        await call.drop()
        ended = await rig.next_event("call.ended")
        assert isinstance(ended, CallEnded) and ended.reason == "interrupted"
        await line_released(rig)
        # The stream dropped, not the call: a Telnyx line is hung up rather than left open.
        assert rig.carrier.hangups() == (1 if kind == "telnyx" else 0)


async def test_a_call_past_max_calls_hears_busy_and_stays_in_the_history(kind):
    async with carrier_rig(kind, phone_kwargs={"max_calls": 1}) as rig:
        first = await rig.carrier.inbound_call(CALLER)
        answered = await rig.next_event("call.answered")
        with pytest.raises(CallRefused) as refused:
            await rig.carrier.inbound_call("+15550002222")
        assert refused.value.reason == "busy"  # not "rejected": the number is not dead
        ended = await rig.next_event("call.ended")
        assert isinstance(ended, CallEnded) and ended.call_id != answered.call_id
        assert (ended.reason, ended.status) == ("at_capacity", "busy")
        refused_start = next(
            e for e in rig.seen if e.type == "call.started" and e.call_id == ended.call_id
        )
        assert refused_start.caller == "+15550002222"  # type: ignore[attr-defined]
        assert len(rig.sim.streams) == 1, "the refused call never got a media stream"
        with pytest.raises(AtCapacity, match="max_calls"):
            await rig.phone.call(to="+15550004444")
        assert rig.carrier.dial_count() == 0, "nothing was dialled past the limit"
        # The first call is untouched, and once it ends the next caller gets through.
        tone = rig.carrier.tone(0.4)
        first.say(tone)
        await first.wait_heard(len(tone), timeout=10)
        await first.hangup()
        assert (await rig.next_event("call.ended")).call_id == answered.call_id
        await rig.sim.settle()
        second = await rig.carrier.inbound_call("+15550002222")
        assert (await rig.next_event("call.answered")).call_id not in (
            answered.call_id,
            ended.call_id,
        )
        await second.hangup()


async def test_a_draining_server_refuses_new_callers_with_busy(kind):
    async with carrier_rig(kind) as rig:
        assert rig.phone.server is not None
        rig.phone.server.accepting = False
        with pytest.raises(CallRefused) as refused:
            await rig.carrier.inbound_call(CALLER)
        assert refused.value.reason == "busy"
        ended = await rig.next_event("call.ended")
        assert (ended.reason, ended.status) == ("draining", "busy")  # type: ignore[attr-defined]
        assert not rig.sim.streams and not rig.phone.server.registry.live()


async def test_a_session_that_cannot_be_set_up_is_hung_up_and_recorded(kind):
    """Whatever breaks building the session (here an agent edited into a bad
    state after serve() checked it) ends the call, recorded, not a live record
    holding a max_calls place forever."""
    async with carrier_rig(kind) as rig:
        assert rig.phone._agent is not None
        rig.phone._agent.tools = ["not a tool"]  # type: ignore[list-item]
        call = await rig.carrier.inbound_call(CALLER)
        error = await rig.next_event("error")
        assert error.code == "setup" and "failed" in error.message  # type: ignore[attr-defined]
        ended = await rig.next_event("call.ended")
        assert (ended.reason, ended.status) == ("setup_failed", "failed")  # type: ignore[attr-defined]
        await call.wait_closed()
        await line_released(rig)
        assert rig.carrier.hangups() == 1
        store = rig.phone.store
        assert store is not None
        async with asyncio.timeout(5):
            while (stored := store.get_call(ended.call_id)) is None or not stored["ended_at"]:
                await asyncio.sleep(0.05)
        assert stored["status"] == "failed" and stored["reason"] == "setup_failed"
