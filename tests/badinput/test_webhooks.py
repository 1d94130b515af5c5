"""Property tests: whatever arrives at the Twilio and Telnyx webhooks — signed or not,
well-formed or not — gets a 2xx/4xx, never a 500, and the server still takes a call."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from patter_core.testing import tone_for
from tests.badinput.strategies import JSON, nested, shaped
from tests.carrier_harness import CALLER, NUMBER, CarrierRig, carrier_rig
from tests.test_twilio_webhooks import VOICE

SETTINGS = {
    "fast": settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck)),
    "long": settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck)),
}
RUNS = ["fast", pytest.param("long", marks=pytest.mark.slow)]

PHONE = st.sampled_from([CALLER, NUMBER, "", "+1", "anonymous"]) | st.text(max_size=16)
TWILIO_FORM = shaped(
    {
        "CallSid": st.sampled_from(["CA" + "1" * 32, "CA" + "2" * 32]) | st.text(max_size=40),
        "AccountSid": st.text(max_size=40),
        "From": PHONE,
        "To": PHONE,
        "CallStatus": st.sampled_from(
            ["ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"]
        ),
        "Direction": st.sampled_from(["inbound", "outbound-api"]),
        "AnsweredBy": st.sampled_from(["human", "machine_start", "fax", "unknown"]),
        "CallDuration": st.integers().map(str) | st.text(max_size=6),
        "RecordingUrl": st.text(max_size=30),
        "RecordingSid": st.text(max_size=30),
        "RecordingDuration": st.text(max_size=6),
        "MachineDetectionDuration": st.text(max_size=6),
    }
).map(lambda d: {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in d.items()})

TELNYX_EVENTS = [
    "call.initiated",
    "call.answered",
    "call.hangup",
    "call.dtmf.received",
    "call.machine.detection.ended",
    "call.recording.saved",
    "streaming.started",
    "streaming.stopped",
    "call.something.new",
]
TELNYX_PAYLOAD = shaped(
    {
        "call_control_id": st.sampled_from(["v3:a", "v3:b"]) | st.text(max_size=10),
        "call_leg_id": st.text(max_size=10),
        "call_session_id": st.text(max_size=10),
        "from": PHONE,
        "to": PHONE,
        "direction": st.sampled_from(["incoming", "outgoing"]),
        "state": st.sampled_from(["parked", "bridging", "answered"]),
        "client_state": st.text(max_size=20),
        "hangup_cause": st.text(max_size=10),
        "digit": st.text(max_size=2),
        "result": st.text(max_size=10),
        "start_time": st.text(max_size=30),
        "end_time": st.text(max_size=30),
        "recording_urls": JSON,
    }
)
TELNYX_BODY = (
    st.builds(
        lambda kind, payload, eid: json.dumps(
            {"data": {"event_type": kind, "id": eid, "payload": payload}}
        ).encode(),
        st.sampled_from(TELNYX_EVENTS) | st.text(max_size=20),
        TELNYX_PAYLOAD | JSON,
        st.uuids().map(str) | JSON,
    )
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=300)
)


def _driver(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on the test's loop from hypothesis's thread."""

    def drive(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=15)

    return drive


async def _still_serves(rig: CarrierRig, codec: str = "PCMU") -> None:
    call = await rig.carrier.inbound_call(CALLER)
    await rig.next_event("call.answered")
    tone = tone_for(codec, 440, 0.2)
    call.say(tone)
    await call.wait_heard(len(tone))
    await call.hangup()
    await rig.next_event("call.ended")


@pytest.mark.parametrize("run", RUNS)
async def test_twilio_webhooks_never_500(run: str) -> None:
    async with carrier_rig("twilio") as rig:
        sim, drive = rig.sim, _driver(asyncio.get_running_loop())
        statuses: list[int] = []

        @SETTINGS[run]
        @given(
            kind=st.sampled_from(["voice", "status", "recording", "amd", "nope"]),
            form=TWILIO_FORM,
            query=st.sampled_from(["", "call_id=x", "call_id=" + "f" * 32]) | st.text(max_size=20),
            signed=st.booleans(),
        )
        @example(kind="voice", form={"CallSid": "x" * 70_000}, query="", signed=True)
        @example(kind="voice", form=VOICE, query="", signed=True)
        @example(kind="status", form={**VOICE, "CallStatus": "completed"}, query="", signed=True)
        def check(kind: str, form: dict[str, str], query: str, signed: bool) -> None:
            url = sim.webhook_url(kind, quote(query, safe="=&"))
            sig = None if signed else "bm9wZQ=="
            body = urlencode(form).encode()
            status, _ = drive(sim.post_webhook(url, form, signature=sig, body=body))
            statuses.append(status)
            assert status < 500, (kind, form, query)
            if not signed:
                assert status in (403, 404, 405)

        @SETTINGS[run]
        @given(
            body=st.binary(max_size=400),
            ctype=st.sampled_from(
                [
                    "",
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data; boundary=x",
                ]
            ),
        )
        def raw(body: bytes, ctype: str) -> None:
            status, _ = drive(
                sim.post_webhook(
                    sim.webhook_url("voice"), {}, body=body, headers={"Content-Type": ctype}
                )
            )
            assert status < 500

        await asyncio.to_thread(check)
        await asyncio.to_thread(raw)
        assert any(s == 200 for s in statuses), "some generated webhooks were accepted"
        await _still_serves(rig)


@pytest.mark.parametrize("run", RUNS)
async def test_telnyx_webhooks_never_500(run: str) -> None:
    async with carrier_rig("telnyx") as rig:
        sim, drive = rig.sim, _driver(asyncio.get_running_loop())

        @SETTINGS[run]
        @given(body=TELNYX_BODY, signed=st.booleans())
        @example(body=nested(30_000).encode(), signed=True)
        @example(body=b'{"data": ' + nested(5_000).encode() + b"}", signed=True)
        def check(body: bytes, signed: bool) -> None:
            status, _ = drive(sim.post_raw(body, signature=None if signed else "bm9wZQ=="))
            assert status < 500, body[:200]
            if not signed:
                assert status == 403

        await asyncio.to_thread(check)
        await _still_serves(rig)
