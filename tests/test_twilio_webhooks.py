"""Webhook security and bad input: exact status codes, never a 500."""

import logging

import pytest

from patter_core import Patter, Twilio
from patter_core.bus import EventBus
from patter_core.carriers.base import CarrierError
from patter_core.carriers.twilio import TwilioControl, TwilioRoutes
from patter_core.server.app import PatterServer, ServerConfig
from tests.fakes.twilio import SimulatedTwilio
from tests.twilio_harness import twilio_rig

VOICE = {
    "CallSid": "CA" + "1" * 32,
    "AccountSid": "AC" + "0" * 31 + "1",
    "From": "+15550001111",
    "To": "+15550001234",
    "CallStatus": "ringing",
    "Direction": "inbound",
}


async def test_valid_signature_gets_stream_twiml_with_caller_and_callee():
    async with twilio_rig() as rig:
        status, twiml = await rig.sim.post_webhook(rig.sim.webhook_url("voice"), VOICE)
        assert status == 200
        assert "<Connect><Stream" in twiml and "wss://agent.patter.test/ws/stream/" in twiml
        assert 'name="caller" value="+15550001111"' in twiml
        assert 'name="callee" value="+15550001234"' in twiml


async def test_a_voice_webhook_for_an_ended_call_gets_a_whole_hangup_document():
    """Twilio can only read a <Response> document: a bare <Hangup/> is a parse error (12100)."""
    import xml.etree.ElementTree as ET

    async with twilio_rig() as rig:
        assert rig.phone.server is not None
        registry = rig.phone.server.registry
        record = registry.new(direction="outbound", carrier="twilio", callee="+15550004444")
        registry.bind_carrier_id(record, VOICE["CallSid"])
        registry.mark_ended(record)
        status, twiml = await rig.sim.post_webhook(rig.sim.webhook_url("voice"), VOICE)
        assert status == 200
        root = ET.fromstring(twiml)
        assert root.tag == "Response" and [v.tag for v in root] == ["Hangup"]


async def test_signature_checks():
    async with twilio_rig() as rig:
        url = rig.sim.webhook_url("voice")
        # forged signature
        assert (await rig.sim.post_webhook(url, VOICE, signature="bm9wZQ=="))[0] == 403
        # missing signature
        assert (await rig.sim.post_webhook(url, VOICE, signature=""))[0] == 403
        # replay with an altered parameter: signed for one caller, sent for another
        sig = rig.sim.sign(url, VOICE)
        altered = {**VOICE, "From": "+15559999999"}
        assert (await rig.sim.post_webhook(url, altered, signature=sig))[0] == 403
        # a duplicated parameter that was not signed
        body = "&".join(f"{k}={v}" for k, v in VOICE.items()).replace("+", "%2B")
        body += "&From=%2B15550002222"
        assert (await rig.sim.post_webhook(url, VOICE, signature=sig, body=body.encode()))[0] == 403
        # signed for another URL (another host)
        other = url.replace("agent.patter.test", "evil.example")
        sig_other = rig.sim.sign(other, VOICE)
        assert (await rig.sim.post_webhook(url, VOICE, signature=sig_other))[0] == 403
        # the same request, correctly signed, passes
        assert (await rig.sim.post_webhook(url, VOICE))[0] == 200


async def test_bad_bodies_get_4xx_not_500():
    async with twilio_rig() as rig:
        url = rig.sim.webhook_url("voice")
        big = b"CallSid=" + b"A" * 70_000
        assert (await rig.sim.post_webhook(url, VOICE, body=big))[0] == 413
        json_ct = {"Content-Type": "application/json"}
        assert (await rig.sim.post_webhook(url, VOICE, headers=json_ct, body=b"{}"))[0] == 400
        assert (await rig.sim.post_webhook(url, VOICE, body=b"\xff\xfe\x00garbage"))[0] == 400
        no_sid = {k: v for k, v in VOICE.items() if k != "CallSid"}
        assert (await rig.sim.post_webhook(url, no_sid))[0] == 400
        no_from = {k: v for k, v in VOICE.items() if k != "From"}
        assert (await rig.sim.post_webhook(url, no_from))[0] == 400
        for kind in ("status", "recording", "amd"):
            assert (await rig.sim.post_webhook(rig.sim.webhook_url(kind), {}))[0] == 400


async def test_missing_auth_token_refuses_with_503_and_says_why(caplog):
    bus = EventBus()
    routes = TwilioRoutes(Twilio(account_sid="AC" + "0" * 32, auth_token="x"))
    routes._validator = None  # as when TWILIO_AUTH_TOKEN was never configured
    server = PatterServer(
        ServerConfig(public_host="agent.patter.test", port=0), bus, carriers=[routes]
    )
    await server.start()
    try:
        async with SimulatedTwilio() as sim:
            sim.server_url = f"http://127.0.0.1:{server.port}"
            with caplog.at_level(logging.ERROR):
                status, _ = await sim.post_webhook(sim.webhook_url("voice"), VOICE)
            assert status == 503
            assert "TWILIO_AUTH_TOKEN is not configured" in caplog.text
    finally:
        await server.stop()


def test_missing_credentials_name_the_env_vars(monkeypatch):
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(ValueError, match="TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        Patter(carrier=Twilio(), phone_number="+15550001234")


def test_constructor_validation(monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tok")
    with pytest.raises(ValueError, match=r"E\.164"):
        Patter(carrier=Twilio(), phone_number="5550001234")
    with pytest.raises(ValueError, match="mutually exclusive"):
        Patter(carrier=Twilio(), phone_number="+15550001234", webhook_url="a.b", tunnel=True)
    phone = Patter(carrier=Twilio(), phone_number="+15550001234")
    assert phone.carrier is not None and phone.carrier.auth_token == "tok"


async def test_rest_errors_become_carrier_errors_without_the_token():
    async with SimulatedTwilio(auth_token="sekret-token-123") as sim:
        control = TwilioControl(
            Twilio(account_sid=sim.account_sid, auth_token=sim.auth_token, api_base_url=sim.api_url)
        )
        sim.fail_next["create_call"] = (400, 21211, "Invalid 'To' Phone Number sekret-token-123")
        with pytest.raises(CarrierError) as info:
            await control.place_call(
                to="+15550004444", from_="+15550001234", call_id="c1", webhook_host="h"
            )
        assert info.value.code == 21211 and info.value.status == 400
        assert "21211" in str(info.value) and "sekret-token-123" not in str(info.value)
        # A 404 (20404) on hang-up means the call already ended: not an error.
        await control.hangup("CA" + "f" * 32)
        wrong = TwilioControl(
            Twilio(account_sid=sim.account_sid, auth_token="wrong", api_base_url=sim.api_url)
        )
        with pytest.raises(CarrierError) as denied:
            await wrong.configure_number("+15550001234", "h")
        assert denied.value.code == 20003 and "wrong" not in str(denied.value)
        await control.close()
        await wrong.close()


async def test_number_lookup_retries_server_errors():
    async with SimulatedTwilio() as sim:
        control = TwilioControl(
            Twilio(account_sid=sim.account_sid, auth_token=sim.auth_token, api_base_url=sim.api_url)
        )
        sim.fail_next["list_numbers"] = (503, 20500, "busy")
        await control.configure_number("+15550001234", "agent.patter.test")
        assert len(sim.requests_of("list_numbers")) == 2
        assert sim.numbers["+15550001234"]["voice_url"].endswith("/webhooks/twilio/voice")
        await control.close()


async def test_unreachable_api_still_serves_and_says_so(caplog):
    phone = Patter(
        carrier=Twilio(
            account_sid="AC" + "2" * 32, auth_token="t", api_base_url="http://127.0.0.1:9"
        ),
        phone_number="+15550001234",
        webhook_url="agent.patter.test",
    )
    import asyncio

    from patter_core import EchoEngine

    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(phone.serve(phone.agent(engine=EchoEngine()), port=0))
        assert await asyncio.wait_for(phone.ready, 20) == "agent.patter.test"
    assert "could not point +15550001234" in caplog.text and "unreachable" in caplog.text
    await phone.disconnect()
    await asyncio.wait_for(task, 10)


async def test_ready_rejects_with_the_real_error():
    import asyncio

    from patter_core import EchoEngine

    phone = Patter()
    agent = phone.agent(engine=EchoEngine())
    with pytest.raises(ValueError, match="port"):
        await phone.serve(agent, port=70000)
    with pytest.raises(ValueError, match="port"):
        await asyncio.wait_for(phone.ready, 1)


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    from patter_core.server.app import client_ip

    transport = mock.Mock()
    transport.get_extra_info.return_value = ("10.0.0.1", 1234)  # the proxy's address
    req = make_mocked_request(
        "GET", "/", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}, transport=transport
    )
    assert client_ip(req, ()) == "10.0.0.1"  # no trusted proxies: the header is ignored
    assert client_ip(req, ("10.0.0.0/8",)) == "203.0.113.9"  # first hop not a proxy
    assert client_ip(req, ("192.0.2.0/24",)) == "10.0.0.1"  # sent by an untrusted host


async def test_serve_with_a_tunnel_configures_the_number_at_the_tunnel_host(tmp_path):
    import asyncio
    import stat as stat_

    from patter_core import CloudflareTunnel, EchoEngine

    fake = tmp_path / "cloudflared"
    fake.write_text(
        '#!/bin/sh\necho "INF |  https://brave-otter-42.trycloudflare.com  |" >&2\nexec sleep 60\n'
    )
    fake.chmod(fake.stat().st_mode | stat_.S_IEXEC)
    async with SimulatedTwilio() as sim:
        phone = Patter(
            carrier=Twilio(sim.account_sid, sim.auth_token, api_base_url=sim.api_url),
            phone_number="+15550001234",
            tunnel=CloudflareTunnel(binary=str(fake)),
            persist=False,
        )
        task = asyncio.create_task(phone.serve(phone.agent(engine=EchoEngine()), port=0))
        assert await asyncio.wait_for(phone.ready, 10) == "brave-otter-42.trycloudflare.com"
        voice_url = sim.numbers["+15550001234"]["voice_url"]
        assert voice_url == "https://brave-otter-42.trycloudflare.com/webhooks/twilio/voice"
        await phone.disconnect()
        await asyncio.wait_for(task, 10)


async def test_serve_rejects_llm_together_with_on_message():
    from patter_core.providers.stt import LocalSTT
    from patter_core.providers.tts import LocalTTS

    phone = Patter(persist=False)
    agent = phone.agent(stt=LocalSTT(), llm=object(), tts=LocalTTS())
    with pytest.raises(ValueError, match="mutually exclusive"):
        await phone.serve(agent, port=0, on_message=lambda d: "hi")
