"""Whole calls over the simulated Twilio: real HTTP, real signatures, real WebSockets."""

import asyncio

import numpy as np
import pytest

from patter_core.audio.g711 import ulaw_decode
from patter_core.events import AmdResult, CallAnswered, CallEnded, CallStarted
from patter_core.testing import tone_mulaw
from tests.twilio_harness import twilio_rig


def _best_alignment_snr(sent: np.ndarray, heard: np.ndarray) -> float:
    """SNR of ``heard`` against ``sent`` at the lag where they line up best."""
    best = -np.inf
    n = len(sent)
    for lag in range(0, len(heard) - n + 1, 1):
        seg = heard[lag : lag + n]
        err = seg - sent
        snr = 10 * np.log10(np.sum(sent**2) / max(np.sum(err**2), 1e-9))
        best = max(best, snr)
    return float(best)


async def test_serve_points_the_number_at_us_and_health_answers():
    async with twilio_rig() as rig:
        number = rig.sim.numbers["+15550001234"]
        assert number["voice_url"] == f"https://{rig.sim.public_host}/webhooks/twilio/voice"
        session = rig.sim._session
        assert session is not None
        async with session.get(f"{rig.sim.server_url}/health") as resp:
            body = await resp.json()
        assert resp.status == 200 and body["status"] == "ok"


async def test_inbound_echo_call_returns_the_callers_audio():
    async with twilio_rig() as rig:
        call = await rig.sim.inbound_call(from_="+15550007777")
        started = await rig.next_event("call.started")
        assert isinstance(started, CallStarted)
        assert (started.caller, started.callee, started.direction) == (
            "+15550007777",
            "+15550001234",
            "inbound",
        )
        assert isinstance(await rig.next_event("call.answered"), CallAnswered)
        tone = tone_mulaw(440, 0.6, amplitude=8000)
        await asyncio.sleep(0.2)
        call.say(tone)
        await call.wait_heard(len(tone) + 8000, timeout=10)
        sent = ulaw_decode(tone).astype(np.float64)[400:-400]
        heard = ulaw_decode(bytes(call.heard)).astype(np.float64)
        # µ-law → 16 kHz → echo → 8 kHz → µ-law: two G.711 quantisations, two resamplers.
        assert _best_alignment_snr(sent, heard) > 25
        assert call.marks, "the leg marks its audio so the session knows what was heard"
        await call.hangup()
        ended = await rig.next_event("call.ended")
        assert isinstance(ended, CallEnded) and ended.reason == "hangup"


async def test_dropped_socket_ends_the_call_as_interrupted():
    async with twilio_rig() as rig:
        call = await rig.sim.inbound_call()
        await rig.next_event("call.answered")
        await call.drop()
        ended = await rig.next_event("call.ended")
        assert isinstance(ended, CallEnded) and ended.reason == "interrupted"
        assert rig.phone.server is not None and not rig.phone.server.registry.live()


async def test_outbound_call_with_async_amd_reports_the_verdict_once():
    verdicts = []

    async with twilio_rig(answered_by="machine_end_beep") as rig:
        call_id = await rig.phone.call(
            to="+15550004444", on_machine_detection=lambda result: verdicts.append(result)
        )
        created = rig.sim.requests_of("create_call")[0]["form"]
        assert created["MachineDetection"] == "DetectMessageEnd"
        assert created["AsyncAmd"] == "true"
        assert created["Timeout"] == "25"
        assert created["AsyncAmdStatusCallback"].endswith(f"/webhooks/twilio/amd?call_id={call_id}")
        assert set(created["StatusCallbackEvent"]) == {
            "initiated",
            "ringing",
            "answered",
            "completed",
        }
        started = await rig.next_event("call.started")
        assert started.call_id == call_id and started.direction == "outbound"
        amd = await rig.next_event("amd.result")
        assert isinstance(amd, AmdResult) and amd.machine and amd.result == "machine_end_beep"
        await asyncio.sleep(0.2)
        assert len(verdicts) == 1
        events = rig.drain()
        assert not [e for e in events if e.type == "call.started"], "announced once, at dialling"


async def test_ring_timeout_none_omits_timeout_and_amd_can_be_off():
    async with twilio_rig() as rig:
        await rig.phone.call(to="+15550004444", machine_detection=False, ring_timeout=None)
        form = rig.sim.requests_of("create_call")[0]["form"]
        assert "Timeout" not in form and "MachineDetection" not in form


async def test_unanswered_outbound_call_is_recorded_from_the_status_callback():
    async with twilio_rig() as rig:
        # A call the simulated callee never answers: drive the status callback ourselves.
        record = rig.phone.server.registry.new(  # type: ignore[union-attr]
            direction="outbound", carrier="twilio", caller="+15550001234", callee="+15550005555"
        )
        rig.phone.server.registry.bind_carrier_id(record, "CA" + "9" * 32)  # type: ignore[union-attr]
        status, _ = await rig.sim.post_webhook(
            rig.sim.webhook_url("status", f"call_id={record.call_id}"),
            {
                "CallSid": "CA" + "9" * 32,
                "AccountSid": rig.sim.account_sid,
                "CallStatus": "no-answer",
                "CallDuration": "0",
            },
        )
        assert status == 204
        ended = await rig.next_event("call.ended")
        assert ended.call_id == record.call_id and ended.reason == "no_answer"


async def test_recording_starts_and_its_callback_becomes_an_event():
    async with twilio_rig(serve_kwargs={"recording": True}) as rig:
        await rig.sim.inbound_call()
        ready = await rig.next_event("recording.ready")
        assert ready.recording_id.startswith("RE")  # type: ignore[attr-defined]
        assert rig.sim.requests_of("create_recording")


async def test_dtmf_from_the_caller_is_an_event():
    async with twilio_rig() as rig:
        call = await rig.sim.inbound_call()
        await rig.next_event("call.answered")
        await call.send_dtmf("7")
        dtmf = await rig.next_event("dtmf")
        assert dtmf.digit == "7"  # type: ignore[attr-defined]


async def test_garbage_on_the_media_socket_is_counted_not_fatal():
    async with twilio_rig() as rig:
        call = await rig.sim.inbound_call()
        await rig.next_event("call.answered")
        for junk in [
            "not json",
            '{"event": "nonsense"}',
            '{"event": "media", "media": {"payload": "***not base64***"}}',
            '{"event": "media"}',
            '{"event": "media", "media": "not an object"}',
            '{"event": "start", "start": ["not", "an", "object"]}',
            '{"event": "dtmf", "dtmf": {"digit": "xx"}}',
            "[1, 2, 3]",
            '{"event": "media", "media": {"payload": "' + "A" * 70_000 + '"}}',
        ]:
            await call.send_raw(junk)
        await call.send_raw(b"\x00\x01binary")
        tone = tone_mulaw(440, 0.3)
        call.say(tone)
        await call.wait_heard(len(tone), timeout=10)  # still echoing: the call survived
        session = rig.phone.sessions[next(iter(rig.phone.sessions))]
        stats = session.leg.stats  # type: ignore[attr-defined]
        assert stats["malformed"] >= 6 and stats["unknown"] >= 1
        assert stats["oversized"] == 1 and stats["binary"] == 1
        await call.hangup()
        assert (await rig.next_event("call.ended")).reason == "hangup"  # type: ignore[attr-defined]


@pytest.mark.parametrize("token_kind", ["unknown-call", "wrong-token", "no-token"])
async def test_media_socket_without_a_valid_token_is_closed_with_policy_violation(token_kind):
    async with twilio_rig() as rig:
        session = rig.sim._session
        assert session is not None
        call = await rig.sim.inbound_call()
        record = next(iter(rig.phone.server.registry.live()))  # type: ignore[union-attr]
        await call.hangup()
        fresh = rig.phone.server.registry.new(direction="inbound", carrier="twilio")  # type: ignore[union-attr]
        path = {
            "unknown-call": f"/ws/stream/{'f' * 32}/{record.stream_token}",
            "wrong-token": f"/ws/stream/{fresh.call_id}/{'x' * 32}",
            "no-token": f"/ws/stream/{fresh.call_id}",
        }[token_kind]
        ws = await session.ws_connect(rig.sim.server_url.replace("http", "ws") + path)
        msg = await ws.receive(timeout=5)
        assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING")
        assert ws.close_code == 1008
        await ws.close()
        assert rig.phone.server.rejected_streams == 1  # type: ignore[union-attr]


async def test_repeated_bad_stream_attempts_are_rate_limited():
    async with twilio_rig() as rig:
        server = rig.phone.server
        assert server is not None
        server.limiter.per_minute = 3
        session = rig.sim._session
        assert session is not None
        url = rig.sim.server_url.replace("http", "ws") + "/ws/stream/nope/nope"
        for _ in range(3):
            ws = await session.ws_connect(url)
            await ws.receive(timeout=5)
            await ws.close()
        async with session.get(rig.sim.server_url + "/ws/stream/nope/nope") as resp:
            assert resp.status == 429
        # A real call still gets through: only failures count, and they are per address.
        server.limiter._hits.clear()
        call = await rig.sim.inbound_call()
        await rig.next_event("call.answered")
        await call.hangup()


async def test_a_served_call_is_persisted_and_survives_a_restart(tmp_path):
    async with twilio_rig(persist=str(tmp_path)) as rig:
        call = await rig.sim.inbound_call(from_="+15550007777")
        started = await rig.next_event("call.started")
        await call.hangup()
        await rig.next_event("call.ended")
    from patter_core.store import CallStore

    store = CallStore(tmp_path)
    row = store.get_call(started.call_id)
    assert row is not None and row["status"] == "completed" and row["caller"] == "+15550007777"
    assert store.hydrate() == 0
    store.close()


class _BrainFactory:
    def __init__(self) -> None:
        from tests.fakes.scripted_brain import ScriptedBrain

        self.brain = ScriptedBrain()

    def create_brain(self):  # type: ignore[no-untyped-def]
        return self.brain


async def test_barge_in_end_to_end_clears_the_carrier_and_cuts_the_reply():
    from patter_core.agent import Agent
    from patter_core.session.interruption import InterruptionPolicy
    from tests.fakes.audio import mulaw, voiced

    factory = _BrainFactory()

    def make_agent(phone):  # type: ignore[no-untyped-def]
        return Agent(
            engine=factory,
            first_message="Thanks for calling, this greeting is long on purpose so you can cut in.",
            interruption=InterruptionPolicy(resume=False),
        )

    async with twilio_rig(make_agent) as rig:
        call = await rig.sim.inbound_call()
        await call.wait_heard(8000, timeout=10)  # a second of the greeting reached the caller
        call.say(mulaw(voiced(900)))
        barge = await rig.next_event("barge_in", timeout=10)
        async with asyncio.timeout(5):
            while call.clears == 0:  # the clear is on the wire; let the carrier read it
                await asyncio.sleep(0.02)
        assert barge.heard_ms >= 1000  # type: ignore[attr-defined]
        assert barge.detect_to_clear_ms < 1000  # type: ignore[attr-defined]
        assert len(factory.brain.interrupts) == 1
        assert abs(factory.brain.interrupts[0] - barge.heard_ms) < 1  # type: ignore[attr-defined]
        await asyncio.sleep(0.3)
        rig.seen.extend(rig.drain())
        cut = next(e for e in rig.seen if e.type == "transcript" and e.role == "agent")
        assert cut.interrupted  # type: ignore[attr-defined]
        assert cut.text and len(cut.text) < len(factory.brain.said[0])  # type: ignore[attr-defined]
        heard_at_cut = len(call.heard)
        await asyncio.sleep(0.5)
        assert len(call.heard) - heard_at_cut < 1600, "no stale agent audio after the clear"
        await call.hangup()


async def test_transfer_sends_dial_twiml_for_the_live_call():
    async with twilio_rig() as rig:
        call = await rig.sim.inbound_call()
        await rig.next_event("call.answered")
        session = next(iter(rig.phone.sessions.values()))
        await session.controls.transfer("+15550003333")
        update = rig.sim.requests_of("update_call")[-1]
        assert update["path"].endswith(f"/Calls/{call.call_sid}.json")
        assert "<Dial>+15550003333</Dial>" in update["form"]["Twiml"]
        ended = await rig.next_event("call.ended")  # the new TwiML ends the stream
        assert ended.call_id == session.call_id


async def test_agent_dtmf_is_played_in_band_on_the_stream():
    async with twilio_rig() as rig:
        call = await rig.sim.inbound_call()
        await rig.next_event("call.answered")
        session = next(iter(rig.phone.sessions.values()))
        before = len(call.heard)
        await session.controls.send_dtmf("12#")
        await call.wait_heard(before + 3 * 800, timeout=5)  # three 100 ms tones at 8 kHz
        assert not rig.sim.requests_of("update_call"), "the stream stays up: no TwiML change"
