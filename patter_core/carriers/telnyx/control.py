"""Telnyx Call Control v2 over aiohttp: JSON commands with Bearer auth.

Every command carries a ``command_id``, which Telnyx uses to ignore repeats,
so server errors and timeouts are retried safely with backoff. Failures
become ``CarrierError`` with Telnyx's ``errors[0].code`` and the HTTP status,
never the API key.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from typing import Any
from urllib.parse import quote

import aiohttp

from patter_core.carriers.base import CarrierError, PlacedCall
from patter_core.carriers.telnyx.config import Carrier

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
RETRIES = 3
CALL_ENDED_CODE = "90018"  # "Call has already ended": hanging up a finished call is fine
WEBHOOK_PATH = "/webhooks/telnyx/voice"
# Answering-machine detection that also reports the greeting's end (beep), so
# a voicemail can be left after the tone, as Twilio's DetectMessageEnd does.
AMD_MODE = "detect_beep"


def encode_client_state(call_id: str) -> str:
    return base64.b64encode(call_id.encode()).decode("ascii")


def decode_client_state(value: object) -> str:
    """Our call id back out of ``client_state``; empty when it is not ours."""
    if not isinstance(value, str) or not value:
        return ""
    try:
        return base64.b64decode(value, validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return ""


def stream_params(stream_url: str, codec: str, sample_rate: int | None = None) -> dict[str, Any]:
    """A bidirectional RTP stream of the caller's audio in ``codec``, both ways."""
    params: dict[str, Any] = {
        "stream_url": stream_url,
        "stream_track": "inbound_track",
        "stream_codec": codec,
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": codec,
    }
    if sample_rate is not None:
        params["stream_bidirectional_sampling_rate"] = sample_rate
    return params


class TelnyxControl:
    name = "telnyx"
    stream_end_ends_call = False

    def __init__(self, carrier: Carrier, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        carrier.require()
        self.carrier = carrier
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def api_base(self) -> str:
        return self.carrier.api_base_url

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={
                    "Authorization": f"Bearer {self.carrier.api_key}",
                    "Accept": "application/json",
                },
            )
        return self._session

    def _scrub(self, text: str) -> str:
        key = self.carrier.api_key
        return text.replace(key, "***") if key else text

    def _error(self, what: str, status: int, body: object) -> CarrierError:
        code: str | None = None
        message = "no error body"
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            code = str(first["code"]) if first.get("code") is not None else None
            message = ": ".join(
                str(first[k]) for k in ("title", "detail") if first.get(k) not in (None, "")
            )
        return CarrierError(
            self._scrub(f"Telnyx {what} failed: HTTP {status}, code {code}: {message}"),
            status=status,
            code=code,
            carrier=self.name,
        )

    async def _request(
        self, method: str, what: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if body is not None and method == "POST":
            body.setdefault("command_id", uuid.uuid4().hex)
        url = f"{self.api_base}{path}"
        delay = 0.2
        for attempt in range(1, RETRIES + 1):
            try:
                async with asyncio.timeout(self.timeout):
                    async with self._http().request(method, url, json=body) as resp:
                        try:
                            data: object = await resp.json(content_type=None)
                        except ValueError:
                            data = None
                        if resp.status < 400:
                            return data if isinstance(data, dict) else {}
                        err = self._error(what, resp.status, data)
                        if resp.status < 500 and resp.status != 429:
                            raise err
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                err = CarrierError(
                    f"Telnyx {what} failed: {self.api_base} unreachable ({type(exc).__name__})",
                    carrier=self.name,
                )
            if attempt == RETRIES:
                raise err
            log.info("telnyx %s failed (attempt %d of %d); retrying", what, attempt, RETRIES)
            await asyncio.sleep(delay)
            delay *= 2.5
        raise AssertionError("unreachable")

    async def _action(self, what: str, call_control_id: str, action: str, **body: Any) -> None:
        path = f"/calls/{quote(call_control_id, safe='')}/actions/{action}"
        await self._request("POST", what, path, body)

    # --- CarrierControl -----------------------------------------------------------

    async def place_call(
        self,
        *,
        to: str,
        from_: str,
        call_id: str,
        webhook_host: str,
        machine_detection: bool = True,
        ring_timeout: int | None = 25,
        record: bool = False,
        stream_url: str = "",
    ) -> PlacedCall:
        body: dict[str, Any] = {
            "connection_id": self.carrier.connection_id,
            "to": to,
            "from": from_,
            "webhook_url": f"https://{webhook_host}{WEBHOOK_PATH}",
            "webhook_url_method": "POST",
            "client_state": encode_client_state(call_id),
            "answering_machine_detection": AMD_MODE if machine_detection else "disabled",
        }
        if ring_timeout is not None:
            body["timeout_secs"] = ring_timeout
        if stream_url:
            # The callee's codec is unknown before answer: PCMU is always available.
            body |= stream_params(stream_url, "PCMU")
        if record:
            body |= {"record": "record-from-answer", "record_format": "wav"}
            body["record_channels"] = "single"
        data = await self._request("POST", "dial", "/calls", body)
        call = data.get("data")
        ccid = call.get("call_control_id") if isinstance(call, dict) else None
        if not isinstance(ccid, str) or not ccid:
            raise CarrierError("Telnyx dial answered without a call_control_id", carrier=self.name)
        return PlacedCall(carrier_call_id=ccid, status="queued")

    async def answer(
        self,
        call_control_id: str,
        *,
        call_id: str,
        stream_url: str = "",
        codec: str = "PCMU",
    ) -> None:
        """Answer; with ``stream_url``, the media stream starts with the call."""
        body: dict[str, Any] = {"client_state": encode_client_state(call_id)}
        if stream_url:
            body |= stream_params(stream_url, codec)
        await self._action("answer", call_control_id, "answer", **body)

    async def reject(self, call_control_id: str, *, cause: str = "USER_BUSY") -> None:
        """Refuse a call that has not been answered; the caller hears busy (``USER_BUSY``)
        or a rejection (``CALL_REJECTED``). A call the caller already gave up on is fine."""
        try:
            await self._action("reject", call_control_id, "reject", cause=cause)
        except CarrierError as exc:
            if exc.code != CALL_ENDED_CODE:
                raise

    async def streaming_start(
        self, call_control_id: str, stream_url: str, *, codec: str, sample_rate: int
    ) -> None:
        """Start a stream on an answered call (answer cannot set the sampling rate)."""
        await self._action(
            "streaming start",
            call_control_id,
            "streaming_start",
            **stream_params(stream_url, codec, sample_rate),
        )

    async def hangup(self, carrier_call_id: str) -> None:
        try:
            await self._action("hang-up", carrier_call_id, "hangup")
        except CarrierError as exc:
            if exc.code != CALL_ENDED_CODE:
                raise

    async def transfer(self, carrier_call_id: str, to: str) -> None:
        await self._action("transfer", carrier_call_id, "transfer", to=to)

    async def start_recording(self, carrier_call_id: str, *, webhook_host: str) -> None:
        """``call.recording.saved`` arrives on the call's own webhook URL."""
        await self._action(
            "recording start", carrier_call_id, "record_start", format="wav", channels="single"
        )

    async def send_dtmf(self, carrier_call_id: str, digits: str) -> None:
        """Out-of-band digits; unlike Twilio's TwiML, this leaves the stream running."""
        await self._action("send digits", carrier_call_id, "send_dtmf", digits=digits)

    async def configure_number(self, phone_number: str, webhook_host: str) -> None:
        """Point the Call Control Application (which owns the number) at this server."""
        path = f"/call_control_applications/{quote(self.carrier.connection_id, safe='')}"
        current = await self._request("GET", "application lookup", path)
        app = current.get("data")
        name = app.get("application_name") if isinstance(app, dict) else None
        await self._request(
            "PATCH",
            "application update",
            path,
            {
                "application_name": name or "patter",
                "webhook_event_url": f"https://{webhook_host}{WEBHOOK_PATH}",
                "webhook_api_version": "2",
            },
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
