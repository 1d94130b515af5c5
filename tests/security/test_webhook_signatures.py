"""Webhook signature bypass attempts over HTTP, both carriers."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote, urlsplit

from nacl.signing import SigningKey
from twilio.request_validator import RequestValidator

from patter_core.carriers.telnyx.control import WEBHOOK_PATH
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


# Query strings as a carrier may hold them: Twilio requests (and signs) each exactly as written.
ODD_QUERIES = (
    "name=a%20b&x=%2F",
    "name=a+b",
    "x=%2f&y=%7e",
    "q=%41",
    "k=1&k=2&k=1",
    "call_id=&z=%C3%A9",
    "a=b%26c&d=%3D",
    "x=%zz",
    "a=1&&b=2&",
    "",  # a bare "?"
)


async def _post_raw_url(server_url: str, target: str, sig: str, body: bytes) -> int:
    """POST with ``target`` (path and query) on the request line byte for byte.

    A raw socket, because an HTTP client re-quotes URLs (yarl even drops a bare "?").
    """
    parts = urlsplit(server_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        head = (
            f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {sig}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode("ascii") + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        await reader.read()
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def test_twilio_signs_odd_query_strings_as_requested_and_they_verify() -> None:
    async with twilio_rig() as rig:
        sim = rig.sim
        validator = RequestValidator(sim.auth_token)
        body = _form(list(VOICE.items()))
        for kind in ("voice", "status"):
            for query in ODD_QUERIES:
                tail = f"/webhooks/twilio/{kind}?{query}"
                sig = validator.compute_signature(f"https://{sim.public_host}{tail}", VOICE)
                status = await _post_raw_url(sim.server_url, tail, sig, body)
                assert status in (200, 204), (kind, query, status)
                if query:  # (aiohttp's client cannot send a bare "?": yarl drops it)
                    # The simulated carrier sends its URLs the same way, unchanged.
                    public = f"https://{sim.public_host}{tail}"
                    assert (await sim.post_webhook(public, VOICE))[0] in (200, 204), (kind, query)


async def test_twilio_odd_queries_altered_after_signing_are_rejected() -> None:
    async with twilio_rig() as rig:
        sim = rig.sim
        validator = RequestValidator(sim.auth_token)
        body = _form(list(VOICE.items()))
        base = f"https://{sim.public_host}/webhooks/twilio/status"
        # (signed for, sent as): the same decoded values spelled another way count as another
        # URL, because the signature covers the string Twilio requested.
        pairs = (
            ("?name=a%20b&x=%2F", "?name=a%20b&x=%2F&extra=1"),
            ("?name=a%20b&x=%2F", "?name=a%20b"),
            ("?name=a%20b&x=%2F", "?name=a+b&x=%2F"),
            ("?name=a%20b&x=%2F", "?name=a%20b&x=/"),
            ("?x=%2f", "?x=%2F"),
            ("?q=%41", "?q=A"),
            ("?k=1&k=2", "?k=2&k=1"),
            ("?k=1&k=2", "?k=1"),
            ("?call_id=abc", "?call_id=abd"),
            ("?", ""),
        )
        for signed, sent in pairs:
            sig = validator.compute_signature(base + signed, VOICE)
            target = f"/webhooks/twilio/status{sent}"
            assert await _post_raw_url(sim.server_url, target, sig, body) == 403, (signed, sent)
        # Signed for another host or scheme with the very same odd query.
        for other in ("https://evil.example", f"http://{sim.public_host}"):
            sig = validator.compute_signature(f"{other}/webhooks/twilio/status?x=%2f", VOICE)
            target = "/webhooks/twilio/status?x=%2f"
            assert await _post_raw_url(sim.server_url, target, sig, body) == 403, other


async def test_telnyx_signs_the_body_so_the_url_query_does_not_matter_but_each_byte_does() -> None:
    async with carrier_rig("telnyx") as rig:
        sim = rig.sim
        now = int(time.time())
        # Escapes, a raw UTF-8 character and percent signs in the body, verified as sent.
        body = sim.envelope("call.something.new", {"call_control_id": "v3:x", "note": "NOTE"})
        body = body.replace(b"NOTE", b"a%20b /\\u00e9 " + "é +".encode())
        for query in ("", "?name=a%20b&x=%2F", "?x=%2f&k=1&k=2", "?q=%41+b"):
            assert (await sim.post_raw(body, timestamp=now, path=WEBHOOK_PATH + query))[0] == 200
        # The same JSON spelled another way (spacing, escaping) is another body: rejected.
        sig = sim.sign(body, now)
        for other in (
            json.dumps(json.loads(body), separators=(",", ":")).encode(),
            json.dumps(json.loads(body), ensure_ascii=True).encode(),
            json.dumps(json.loads(body), ensure_ascii=False).encode(),
        ):
            assert other != body
            assert (await sim.post_raw(other, timestamp=now, signature=sig))[0] == 403
