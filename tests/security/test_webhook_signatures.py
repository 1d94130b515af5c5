"""Webhook signature bypass attempts over HTTP, both carriers."""

from __future__ import annotations

import time
from urllib.parse import quote

from nacl.signing import SigningKey

from tests.carrier_harness import carrier_rig
from tests.test_twilio_webhooks import VOICE
from tests.twilio_harness import twilio_rig


def _form(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs).encode()


async def test_twilio_bypass_attempts() -> None:
    async with twilio_rig() as rig:
        sim = rig.sim
        url = sim.webhook_url("voice")
        sig = sim.sign(url, VOICE)
        pairs = list(VOICE.items())
        # Reordering the fields is not a bypass: Twilio signs them sorted, so it still verifies.
        assert (await sim.post_webhook(url, VOICE, body=_form(pairs[::-1])))[0] == 200
        # A duplicated field with another value: rejected, whichever copy comes first.
        for dup in ([("From", "+15559990000"), *pairs], [*pairs, ("From", "+15559990000")]):
            assert (await sim.post_webhook(url, VOICE, signature=sig, body=_form(dup)))[0] == 403
        # A field dropped or added after signing.
        assert (await sim.post_webhook(url, VOICE, signature=sig, body=_form(pairs[1:])))[0] == 403
        extra = [*pairs, ("AnsweredBy", "human")]
        assert (await sim.post_webhook(url, VOICE, signature=sig, body=_form(extra)))[0] == 403
        # Signed for another path, another scheme, or with a query string we don't get.
        for other in (
            sim.webhook_url("status"),
            url.replace("https://", "http://"),
            url + "?call_id=x",
            url + "/",
        ):
            forged = sim.sign(other, VOICE)
            assert (await sim.post_webhook(url, VOICE, signature=forged))[0] == 403, other
        # Case games on the header value, and a signature made with another token.
        assert (await sim.post_webhook(url, VOICE, signature=sig.lower()))[0] == 403
        from twilio.request_validator import RequestValidator

        stolen = RequestValidator("another-accounts-token").compute_signature(url, VOICE)
        assert (await sim.post_webhook(url, VOICE, signature=stolen))[0] == 403


async def test_telnyx_replays_past_the_window_and_foreign_keys_are_rejected() -> None:
    async with carrier_rig("telnyx") as rig:
        sim = rig.sim
        body = sim.envelope("call.something.new", {"call_control_id": "v3:x"})
        now = int(time.time())
        assert (await sim.post_raw(body, timestamp=now))[0] == 200
        # A captured, validly signed request replayed 6 minutes later, or dated ahead.
        for ts in (now - 360, now + 360):
            assert (await sim.post_raw(body, timestamp=ts))[0] == 403, ts
        # The signature of one timestamp moved onto another.
        old_sig = sim.sign(body, now - 360)
        assert (await sim.post_raw(body, timestamp=now, signature=old_sig))[0] == 403
        # The body changed after signing, or signed by someone else's key.
        sig = sim.sign(body, now)
        assert (await sim.post_raw(body + b" ", timestamp=now, signature=sig))[0] == 403
        foreign = sim.sign(body, now, key=SigningKey.generate())
        assert (await sim.post_raw(body, timestamp=now, signature=foreign))[0] == 403
        # Missing or junk headers.
        for headers in (
            {"telnyx-timestamp": ""},
            {"telnyx-timestamp": "soon"},
            {"telnyx-signature-ed25519": ""},
            {"telnyx-signature-ed25519": "!!!not base64"},
        ):
            assert (await sim.post_raw(body, headers=headers))[0] == 403, headers
