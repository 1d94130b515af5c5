"""Twilio's REST side through the ``twilio`` package's async client.

Each request runs under a timeout; reads that are safe to repeat are retried
with backoff; every failure becomes a ``CarrierError`` that names Twilio's
error code and never the auth token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, VoiceResponse

from patter_core.carriers.base import CarrierError, PlacedCall
from patter_core.carriers.twilio.config import Carrier

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 10.0
READ_RETRIES = 3
CALL_ENDED_CODE = 20404  # "not found": hanging up a call that already ended


def _page_error(exc: TwilioException) -> tuple[int | None, int | None, str]:
    response = exc.args[1] if len(exc.args) > 1 else None
    status = getattr(response, "status_code", None)
    try:
        body = json.loads(getattr(response, "text", "") or "{}")
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    message = body.get("message", str(exc.args[0] if exc.args else exc))
    return status, code, str(message)


class TwilioControl:
    name = "twilio"
    stream_end_ends_call = True

    def __init__(self, carrier: Carrier, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        carrier.require()
        self.carrier = carrier
        self.timeout = timeout
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._http = AsyncTwilioHttpClient(timeout=self.timeout)
            self._client = Client(
                self.carrier.account_sid,
                self.carrier.auth_token,
                region=self.carrier.region,
                edge=self.carrier.edge,
                http_client=self._http,
            )
            if self.carrier.api_base_url:
                self._client.api.base_url = self.carrier.api_base_url
        return self._client

    @property
    def api_base(self) -> str:
        return self.carrier.api_base_url or "https://api.twilio.com"

    def _scrub(self, text: str) -> str:
        token = self.carrier.auth_token
        return text.replace(token, "***") if token else text

    async def _call(self, what: str, make: Callable[[], Awaitable[T]], *, retries: int = 1) -> T:
        delay = 0.2
        for attempt in range(1, retries + 1):
            try:
                async with asyncio.timeout(self.timeout):
                    return await make()
            except TwilioRestException as exc:
                err = CarrierError(
                    self._scrub(
                        f"Twilio {what} failed: HTTP {exc.status}, code {exc.code}: {exc.msg}"
                    ),
                    status=exc.status,
                    code=exc.code,
                    carrier=self.name,
                )
                if exc.status < 500 or attempt == retries:
                    raise err from None
            except TwilioException as exc:
                # List pages raise a bare TwilioException carrying the HTTP response.
                status, code, message = _page_error(exc)
                err = CarrierError(
                    self._scrub(f"Twilio {what} failed: HTTP {status}, code {code}: {message}"),
                    status=status,
                    code=code,
                    carrier=self.name,
                )
                if status is None or status < 500 or attempt == retries:
                    raise err from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                err = CarrierError(
                    f"Twilio {what} failed: {self.api_base} unreachable ({type(exc).__name__})",
                    carrier=self.name,
                )
                if attempt == retries:
                    raise err from None
            log.info("twilio %s failed (attempt %d of %d); retrying", what, attempt, retries)
            await asyncio.sleep(delay)
            delay *= 2.5
        raise AssertionError("unreachable")

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
        # stream_url is unused: Twilio learns it from the voice webhook's TwiML.
        base = f"https://{webhook_host}/webhooks/twilio"
        params: dict[str, Any] = {
            "to": to,
            "from_": from_,
            "url": f"{base}/voice?call_id={call_id}",
            "method": "POST",
            "status_callback": f"{base}/status?call_id={call_id}",
            "status_callback_event": ["initiated", "ringing", "answered", "completed"],
            "status_callback_method": "POST",
        }
        if ring_timeout is not None:
            params["timeout"] = ring_timeout
        if machine_detection:
            params["machine_detection"] = "DetectMessageEnd"
            params["async_amd"] = "true"
            params["async_amd_status_callback"] = f"{base}/amd?call_id={call_id}"
            params["async_amd_status_callback_method"] = "POST"
        if record:
            params["record"] = True
            params["recording_status_callback"] = f"{base}/recording?call_id={call_id}"
        call = await self._call("call create", lambda: self.client.calls.create_async(**params))
        return PlacedCall(carrier_call_id=str(call.sid), status=str(call.status or "queued"))

    async def hangup(self, carrier_call_id: str) -> None:
        try:
            await self._call(
                "hang-up",
                lambda: self.client.calls(carrier_call_id).update_async(status="completed"),
            )
        except CarrierError as exc:
            if exc.code != CALL_ENDED_CODE:
                raise

    async def transfer(self, carrier_call_id: str, to: str) -> None:
        response = VoiceResponse()
        response.append(Dial(to))
        twiml = str(response)
        await self._call(
            "transfer", lambda: self.client.calls(carrier_call_id).update_async(twiml=twiml)
        )

    async def start_recording(self, carrier_call_id: str, *, webhook_host: str) -> None:
        callback = f"https://{webhook_host}/webhooks/twilio/recording"
        await self._call(
            "recording start",
            lambda: self.client.calls(carrier_call_id).recordings.create_async(
                recording_status_callback=callback,
                recording_status_callback_event=["completed"],
            ),
        )

    async def send_dtmf(self, carrier_call_id: str, digits: str) -> None:
        """Not used on live agent calls: new TwiML would end the media stream.

        The session plays DTMF in-band on the media stream instead (see
        ``patter_core.audio.dtmf``); this is for calls without a stream.
        """
        response = VoiceResponse()
        response.play(digits=digits)
        twiml = str(response)
        await self._call(
            "send digits", lambda: self.client.calls(carrier_call_id).update_async(twiml=twiml)
        )

    async def configure_number(self, phone_number: str, webhook_host: str) -> None:
        numbers = await self._call(
            "number lookup",
            lambda: self.client.incoming_phone_numbers.list_async(
                phone_number=phone_number, limit=5
            ),
            retries=READ_RETRIES,
        )
        if not numbers:
            raise CarrierError(
                f"{phone_number} is not a number on this Twilio account", carrier=self.name
            )
        sid = numbers[0].sid
        base = f"https://{webhook_host}/webhooks/twilio"
        await self._call(
            "number update",
            lambda: self.client.incoming_phone_numbers(sid).update_async(
                voice_url=f"{base}/voice",
                voice_method="POST",
                status_callback=f"{base}/status",
                status_callback_method="POST",
            ),
        )

    async def close(self) -> None:
        if self._http is not None and self._http.session is not None:
            await self._http.session.close()
        self._http = None
        self._client = None
