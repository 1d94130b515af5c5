"""Telnyx specifics: signature vector and clock window, envelope checks, duplicates,
codec negotiation, Call Control requests and errors. Never a 500."""

import asyncio
import base64
import json
import logging
import time

import pytest
from nacl.signing import SigningKey

from patter_core import Patter, Telnyx
from patter_core.audio.formats import L16_16K
from patter_core.carriers.base import CarrierError
from patter_core.carriers.telnyx import TelnyxControl
from patter_core.carriers.telnyx.control import decode_client_state
from patter_core.carriers.telnyx.leg import choose_codec
from patter_core.carriers.telnyx.signature import (
    SignatureError,
    load_public_key,
    verify,
)
from patter_core.testing import SimulatedTelnyx
from tests.carrier_harness import carrier_rig

VECTOR_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
VECTOR_BODY = b'{"data":{"event_type":"call.initiated","payload":{"call_control_id":"v3:abc"}}}'
VECTOR_SIG = (
    "3IagqxhPT6LiDx2vo652YOvhClZ4Yjba3geJrEVB507XIk3KPiG7LpKx+lDRjUEOgJ30dd1KU7r7UkkQ3VrYCQ=="
)


def test_signature_vector_from_protocols_md():
    key = load_public_key(VECTOR_KEY)
    headers = {"Telnyx-Signature-Ed25519": VECTOR_SIG, "TELNYX-TIMESTAMP": "1700000000"}
    verify(key, headers, VECTOR_BODY, now=1_700_000_000)  # header names in any case
    assert base64.b64encode(bytes(SigningKey(bytes(range(32))).verify_key)).decode() == VECTOR_KEY
    verify(key, headers, VECTOR_BODY, now=1_700_000_300)  # exactly 5 minutes: still fine
    for now in (1_700_000_301, 1_699_999_699):
        with pytest.raises(SignatureError, match="from now"):
            verify(key, headers, VECTOR_BODY, now=now)
    with pytest.raises(SignatureError, match="does not match"):
        verify(key, headers, VECTOR_BODY + b" ", now=1_700_000_000)
    with pytest.raises(SignatureError, match="does not match"):
        verify(key, {**headers, "TELNYX-TIMESTAMP": "1700000001"}, VECTOR_BODY, now=1_700_000_000)
    for bad in ({"telnyx-timestamp": "1700000000"}, {**headers, "TELNYX-TIMESTAMP": "soon"}):
        with pytest.raises(SignatureError):
            verify(key, bad, VECTOR_BODY, now=1_700_000_000)
    with pytest.raises(SignatureError, match="base64"):
        verify(key, {**headers, "Telnyx-Signature-Ed25519": "***"}, VECTOR_BODY, now=1_700_000_000)


def test_config_env_fallbacks_and_errors(monkeypatch):
    for var in (
        "TELNYX_API_KEY",
        "TELNYX_CONNECTION_ID",
        "TELNYX_PUBLIC_KEY",
        "TELNYX_API_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ValueError, match="TELNYX_API_KEY and TELNYX_CONNECTION_ID"):
        Patter(carrier=Telnyx(), phone_number="+15550001234")
    monkeypatch.setenv("TELNYX_API_KEY", "KEYabc")
    with pytest.raises(ValueError, match="TELNYX_CONNECTION_ID"):
        Telnyx().require()
    monkeypatch.setenv("TELNYX_CONNECTION_ID", "123")
    monkeypatch.setenv("TELNYX_API_BASE_URL", "http://127.0.0.1:1/v2/")
    carrier = Telnyx()
    assert carrier.api_base_url == "http://127.0.0.1:1/v2" and "KEYabc" not in repr(carrier)
    assert Telnyx(api_base_url="").api_base_url == "http://127.0.0.1:1/v2"
    monkeypatch.delenv("TELNYX_API_BASE_URL")
    assert Telnyx().api_base_url == "https://api.telnyx.com/v2"
    with pytest.raises(ValueError, match="TELNYX_PUBLIC_KEY"):
        Telnyx(public_key="not-a-key!").require()
    with pytest.raises(ValueError, match="32 bytes"):
        Telnyx(public_key=base64.b64encode(b"short").decode()).require()


def test_codec_choice():
    assert choose_codec("L16,PCMU") == "L16"
    assert choose_codec("PCMU, PCMA, G722") == "PCMU"
    assert choose_codec(None) == "PCMU" and choose_codec(["L16"]) == "PCMU"


async def test_duplicate_deliveries_are_processed_once():
    async with carrier_rig("telnyx") as rig:
        sim = rig.sim
        ccid = sim._new_call("+15550001111", "+15550001234")
        payload = sim._payload(ccid, {"direction": "incoming", "state": "parked"})
        body = sim.envelope("call.initiated", payload, event_id="0ccc7b54-dup")
        assert (await sim.post_raw(body))[0] == 200
        assert (await sim.post_raw(body))[0] == 200  # Telnyx retried
        # a re-delivery under a new id is recognised by its call_control_id
        assert (await sim.post_event("call.initiated", payload))[0] == 200
        for _ in range(50):
            if sim.commands_of("answer"):
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert len(sim.commands_of("answer")) == 1
        assert rig.phone.server is not None and len(rig.phone.server.registry.live()) == 1
        routes = rig.phone.server.carriers["telnyx"]
        assert routes.duplicates == 1  # type: ignore[attr-defined]


async def test_bad_envelopes_get_4xx_not_500():
    async with carrier_rig("telnyx") as rig:
        sim = rig.sim
        good = {"call_control_id": "v3:x", "from": "+15550001111", "to": "+15550001234"}
        cases = {
            b"not json": 400,
            b"\xff\xfe\x00": 400,
            b"[1, 2]": 400,
            b"{}": 400,
            b'{"data": {"payload": {}}}': 400,
            b'{"data": {"event_type": "call.answered", "payload": []}}': 400,
            b'{"data": {"event_type": "call.answered", "payload": {}}}': 400,
            sim.envelope("call.initiated", {**good, "direction": "incoming", "from": 5}): 400,
            sim.envelope("call.dtmf.received", {"call_control_id": "v3:unknown"}): 200,
            sim.envelope("call.something.new", good): 200,
            b'{"data": {"event_type": "x", "payload": {}}, "pad": "' + b"A" * 70_000 + b'"}': 413,
        }
        for body, expected in cases.items():
            status, _ = await sim.post_raw(body)
            assert status == expected, body[:60]
        assert not rig.phone.server.registry.live()  # type: ignore[union-attr]


async def test_without_a_public_key_webhooks_pass_unchecked_with_one_warning(caplog):
    async with SimulatedTelnyx() as sim:
        phone = Patter(
            carrier=Telnyx(
                api_key=sim.api_key, connection_id=sim.connection_id, api_base_url=sim.api_url
            ),
            phone_number="+15550001234",
            webhook_url=sim.public_host,
        )
        from patter_core import EchoEngine

        task = asyncio.create_task(phone.serve(phone.agent(engine=EchoEngine()), port=0))
        await asyncio.wait_for(phone.ready, 10)
        sim.server_url = f"http://127.0.0.1:{phone.server.port}"  # type: ignore[union-attr]
        with caplog.at_level(logging.WARNING):
            call = await sim.inbound_call()
            await call.hangup()
            assert (await sim.post_raw(b'{"data":{}}', signature="garbage"))[0] == 400
        assert caplog.text.count("signatures are NOT being checked") == 1
        await phone.disconnect()
        await asyncio.wait_for(task, 10)


async def test_l16_is_chosen_when_offered_and_started_at_16k():
    async with carrier_rig("telnyx", codec="L16") as rig:
        call = await rig.carrier.inbound_call()
        await rig.next_event("call.answered")
        answer = rig.sim.commands_of("answer")[0]["body"]
        assert "stream_url" not in answer  # answer cannot set the sampling rate
        start = rig.sim.commands_of("streaming_start")[0]["body"]
        assert start["stream_codec"] == start["stream_bidirectional_codec"] == "L16"
        assert start["stream_bidirectional_sampling_rate"] == 16000
        assert start["stream_bidirectional_mode"] == "rtp"
        session = next(iter(rig.phone.sessions.values()))
        assert session.leg.wire_format == L16_16K
        assert session.leg.stats["format_mismatch"] == 0  # type: ignore[attr-defined]
        await call.hangup()


async def test_pcmu_answer_streams_to_our_socket_with_the_call_token():
    async with carrier_rig("telnyx") as rig:
        await rig.carrier.inbound_call()
        await rig.next_event("call.answered")
        record = rig.phone.server.registry.live()[0]  # type: ignore[union-attr]
        answer = rig.sim.commands_of("answer")[0]["body"]
        assert answer["stream_url"] == (
            f"wss://{rig.sim.public_host}/ws/stream/{record.call_id}/{record.stream_token}"
        )
        assert answer["stream_bidirectional_codec"] == "PCMU" and answer["command_id"]
        assert decode_client_state(answer["client_state"]) == record.call_id


async def test_dial_request_carries_amd_timeout_webhook_state_and_stream():
    async with carrier_rig("telnyx") as rig:
        call_id = await rig.phone.call(to="+15550004444")
        body = rig.sim.commands_of("dial")[0]["body"]
        record = rig.phone.server.registry.get(call_id)  # type: ignore[union-attr]
        assert body["connection_id"] == rig.sim.connection_id
        assert (body["to"], body["from"]) == ("+15550004444", "+15550001234")
        assert body["answering_machine_detection"] == "detect_beep"
        assert body["timeout_secs"] == 25
        assert body["webhook_url"] == f"https://{rig.sim.public_host}/webhooks/telnyx/voice"
        assert decode_client_state(body["client_state"]) == call_id
        assert body["stream_url"].endswith(f"/ws/stream/{call_id}/{record.stream_token}")
        assert body["stream_bidirectional_mode"] == "rtp"
        assert record.carrier_call_id == rig.sim.commands_of("dial")[0]["call_control_id"]


async def test_failed_answer_ends_the_call():
    async with carrier_rig("telnyx") as rig:
        rig.sim.fail_next["answer"] = (422, "90018", "Call has already ended")
        with pytest.raises(asyncio.TimeoutError):
            await rig.sim.inbound_call(timeout=1)
        ended = await rig.next_event("call.ended")
        assert ended.reason == "failed"  # type: ignore[attr-defined]


async def test_control_errors_are_carrier_errors_without_the_key():
    async with SimulatedTelnyx(api_key="KEYsekret-123") as sim:
        carrier = Telnyx(
            api_key=sim.api_key, connection_id=sim.connection_id, api_base_url=sim.api_url
        )
        control = TelnyxControl(carrier)
        sim.fail_next["dial"] = (422, "10016", "Invalid 'to' KEYsekret-123")
        with pytest.raises(CarrierError) as info:
            await control.place_call(to="+1555", from_="+1555", call_id="c", webhook_host="h")
        assert info.value.code == "10016" and info.value.status == 422
        assert info.value.carrier == "telnyx" and "KEYsekret-123" not in str(info.value)
        # A server error is retried with the same command; the retry succeeds.
        sim.fail_next["dial"] = (503, "50000", "busy")
        placed = await control.place_call(
            to="+15550004444", from_="+15550001234", call_id="c2", webhook_host="h"
        )
        dials = sim.commands_of("dial")[-2:]
        assert placed.carrier_call_id.startswith("v3:")
        assert dials[0]["body"]["command_id"] == dials[1]["body"]["command_id"]
        # Hanging up a call that already ended is not an error (90018).
        await control.hangup("v3:long-gone")
        with pytest.raises(CarrierError) as ended:
            await control.transfer("v3:long-gone", "+15550003333")
        assert ended.value.code == "90018"
        await control.send_dtmf(placed.carrier_call_id, "12#")
        assert sim.commands_of("send_dtmf")[-1]["body"]["digits"] == "12#"
        wrong = TelnyxControl(
            Telnyx(api_key="KEYwrong", connection_id="1", api_base_url=sim.api_url)
        )
        with pytest.raises(CarrierError) as denied:
            await wrong.hangup("v3:x")
        assert denied.value.status == 401 and "KEYwrong" not in str(denied.value)
        unreachable = TelnyxControl(
            Telnyx(api_key="KEYx", connection_id="1", api_base_url="http://127.0.0.1:9/v2"),
            timeout=2,
        )
        with pytest.raises(CarrierError, match="unreachable"):
            await unreachable.send_dtmf("v3:x", "1")
        for c in (control, wrong, unreachable):
            await c.close()


async def test_garbage_on_the_media_socket_is_counted_not_fatal():
    async with carrier_rig("telnyx") as rig:
        call = await rig.carrier.inbound_call()
        await rig.next_event("call.answered")
        for junk in [
            "not json",
            '{"event": "nonsense"}',
            '{"event": "media", "media": {"payload": "***"}}',
            '{"event": "media"}',
            '{"event": "dtmf", "dtmf": {"digit": "xx"}}',
            '{"event": "start", "start": "oops"}',
            json.dumps({"event": "error", "payload": {"code": 100002, "title": "unknown_error"}}),
            '{"event": "media", "media": {"payload": "' + "A" * 70_000 + '"}}',
        ]:
            await call.send_raw(junk)
        await call.send_raw(b"\x00binary")
        tone = rig.carrier.tone(0.3)
        call.say(tone)
        await call.wait_heard(len(tone), timeout=10)  # still echoing
        stats = next(iter(rig.phone.sessions.values())).leg.stats  # type: ignore[attr-defined]
        assert stats["malformed"] >= 4 and stats["unknown"] == 1 and stats["carrier_error"] == 1
        assert stats["oversized"] == 1 and stats["binary"] == 1
        await call.hangup()
        assert (await rig.next_event("call.ended")).reason == "hangup"  # type: ignore[attr-defined]


def test_signature_rejects_a_stale_timestamp_even_with_a_valid_signature():
    key = SigningKey.generate()
    body = b"{}"
    ts = int(time.time()) - 600
    sig = base64.b64encode(key.sign(f"{ts}|".encode() + body).signature).decode()
    headers = {"telnyx-signature-ed25519": sig, "telnyx-timestamp": str(ts)}
    with pytest.raises(SignatureError):
        verify(key.verify_key, headers, body)
    verify(key.verify_key, headers, body, now=ts + 1)
