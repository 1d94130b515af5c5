"""Twilio's webhooks: signed form POSTs in, TwiML or typed events out.

Every request is checked the same way before anything else happens: size,
content type, fields, then the ``X-Twilio-Signature`` (the ``twilio``
package's own validator) over the public URL Twilio called. Bad input gets a
4xx with a short reason and a log line, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator, compare
from twilio.twiml.voice_response import Connect, VoiceResponse

from patter_core.carriers.twilio.config import Carrier
from patter_core.carriers.twilio.leg import TwilioLeg
from patter_core.events import AmdResult, RecordingReady
from patter_core.server.registry import CallRecord

if TYPE_CHECKING:
    from patter_core.server.app import PatterServer

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
MACHINE_ANSWERS = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)
PREFIX = "/webhooks/twilio"

FormHandler = Callable[[web.Request, MultiDict[str]], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebhookRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def twiml_stream(stream_url: str, record: CallRecord) -> str:
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    stream.parameter(name="call_id", value=record.call_id)
    stream.parameter(name="caller", value=record.caller)
    stream.parameter(name="callee", value=record.callee)
    response.append(connect)
    return str(response)


def _twiml(verb: Callable[[VoiceResponse], object]) -> web.Response:
    """A one-verb TwiML document. The verb methods return the verb, not the document,
    so the document is built first and rendered whole (a bare ``<Hangup/>`` is not TwiML)."""
    response = VoiceResponse()
    verb(response)
    return web.Response(text=str(response), content_type="text/xml")


class TwilioRoutes:
    name = "twilio"

    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self._validator = RequestValidator(carrier.auth_token) if carrier.auth_token else None
        self._warned_unsigned = False
        self.server: PatterServer | None = None

    def install(self, app: web.Application, server: PatterServer) -> None:
        self.server = server
        app.router.add_post(f"{PREFIX}/voice", self._guard(self._voice))
        app.router.add_post(f"{PREFIX}/status", self._guard(self._status))
        app.router.add_post(f"{PREFIX}/recording", self._guard(self._recording))
        app.router.add_post(f"{PREFIX}/amd", self._guard(self._amd))

    def make_leg(self, ws: web.WebSocketResponse, record: CallRecord) -> TwilioLeg:
        return TwilioLeg(ws, record.call_id)

    def _guard(self, handler: FormHandler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                form = await self._verified_form(request)
                return await handler(request, form)
            except WebhookRejected as exc:
                log.warning(
                    "twilio webhook %s rejected (%d): %s", request.path, exc.status, exc.reason
                )
                return web.Response(status=exc.status, text=exc.reason + "\n")

        return run

    async def _verified_form(self, request: web.Request) -> MultiDict[str]:
        assert self.server is not None
        config = self.server.config
        if request.content_length is not None and request.content_length > config.max_body_bytes:
            raise WebhookRejected(413, "body too large")
        if request.content_type != FORM:
            raise WebhookRejected(400, f"expected {FORM}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise WebhookRejected(413, "body too large") from None
        try:
            form: MultiDict[str] = MultiDict(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=500)
            )
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected(400, "unreadable form body") from None
        if config.require_signature:
            if self._validator is None:
                log.error(
                    "twilio webhook refused: TWILIO_AUTH_TOKEN is not configured, so the signature "
                    "cannot be checked (set it, or require_signature=False for local tests)"
                )
                raise WebhookRejected(503, "signature verification not configured")
            if not config.public_host:
                log.error("twilio webhook refused: no public host (webhook_url) to verify against")
                raise WebhookRejected(503, "public host not configured")
            signature = request.headers.get("X-Twilio-Signature", "")
            if not signature or not self._signed(signature, request.raw_path, form):
                raise WebhookRejected(403, "invalid signature")
        elif not self._warned_unsigned:
            self._warned_unsigned = True
            log.warning("twilio webhook signatures are NOT being checked (require_signature=False)")
        if not form.get("CallSid"):
            raise WebhookRejected(400, "missing CallSid")
        return form

    def _signed(self, signature: str, raw_target: str, form: MultiDict[str]) -> bool:
        """Whether Twilio signed this URL and form.

        Twilio signs the URL exactly as it requested it, so the URL checked is the
        public base URL plus the request target as it came on the request line
        (``raw_path``: path and query, never decoded or re-quoted).
        """
        assert self._validator is not None and self.server is not None
        url = self.server.config.base_url + raw_target
        if self._validator.validate(url, form, signature):
            return True
        # The validator re-assembles the URL (urlparse, then geturl) to try it with and
        # without the port, and that drops an empty query: "/status?" becomes "/status".
        # Twilio signed the "?", so that one URL is also checked as it stands.
        if not url.endswith("?"):
            return False
        return bool(compare(self._validator.compute_signature(url, form), signature))

    def _record_for(self, request: web.Request, form: MultiDict[str]) -> CallRecord | None:
        assert self.server is not None
        registry = self.server.registry
        call_id = request.query.get("call_id", "")
        record = registry.get(call_id) if call_id else None
        if record is None:
            record = registry.by_carrier_id(form["CallSid"])
        elif not record.carrier_call_id:
            registry.bind_carrier_id(record, form["CallSid"])
        return record

    async def _voice(self, request: web.Request, form: MultiDict[str]) -> web.Response:
        assert self.server is not None
        if not form.get("From") or not form.get("To"):
            raise WebhookRejected(400, "missing From or To")
        record = self._record_for(request, form)
        refusal = self.server.admission() if record is None else None
        if refusal is not None:
            self.server.record_refused(
                carrier=self.name,
                caller=form["From"],
                callee=form["To"],
                carrier_call_id=form["CallSid"],
                reason=refusal,
            )
            # <Reject> before anything else: Twilio does not answer, so nothing is billed.
            return _twiml(lambda r: r.reject(reason="busy"))
        if record is None:
            record = self.server.registry.new(
                direction="inbound",
                carrier=self.name,
                caller=form["From"],
                callee=form["To"],
                carrier_call_id=form["CallSid"],
            )
            log.info("inbound call %s from twilio %s", record.call_id, record.carrier_call_id)
        if record.state == "ended":
            return _twiml(lambda r: r.hangup())
        await self.server.call_arrived(record)
        xml = twiml_stream(self.server.stream_url(record), record)
        return web.Response(text=xml, content_type="text/xml")

    async def _status(self, request: web.Request, form: MultiDict[str]) -> web.Response:
        assert self.server is not None
        record = self._record_for(request, form)
        status = form.get("CallStatus", "")
        if record is None:
            return web.Response(status=204)
        if status in ("in-progress", "answered"):
            record.answered = True
        if status in FINAL_STATUSES and record.session is not None:
            # Twilio says the call is over; normally the stream's stop said so first,
            # but a lost stop must not leave a session running on a dead call.
            record.session.end("hangup")
        if status in FINAL_STATUSES and record.session is None and not record.ended_published:
            # No media stream ever ran (no answer, busy, failed): the call ends here.
            try:
                duration = float(form.get("CallDuration") or 0)
            except ValueError:
                duration = 0.0
            self.server.end_unstreamed(record, status.replace("-", "_"), status, duration)
        return web.Response(status=204)

    async def _recording(self, request: web.Request, form: MultiDict[str]) -> web.Response:
        assert self.server is not None
        record = self._record_for(request, form)
        if record is None:
            return web.Response(status=204)
        if form.get("RecordingStatus", "completed") != "completed":
            return web.Response(status=204)
        try:
            duration: float | None = float(form["RecordingDuration"])
        except (KeyError, ValueError):
            duration = None
        self.server.bus.publish(
            RecordingReady(
                call_id=record.call_id,
                url=form.get("RecordingUrl", ""),
                recording_id=form.get("RecordingSid", ""),
                duration_s=duration,
            )
        )
        return web.Response(status=204)

    async def _amd(self, request: web.Request, form: MultiDict[str]) -> web.Response:
        assert self.server is not None
        record = self._record_for(request, form)
        answered_by = form.get("AnsweredBy", "").strip().lower()
        if record is None or not answered_by:
            return web.Response(status=204)
        if record.amd_verdict is not None:
            return web.Response(status=204)  # a repeated delivery: the first verdict stands
        record.amd_verdict = answered_by
        session = record.session
        if session is not None:
            await session.on_amd(answered_by)
        else:
            try:
                ms: float | None = float(form["MachineDetectionDuration"])
            except (KeyError, ValueError):
                ms = None
            self.server.bus.publish(
                AmdResult(
                    call_id=record.call_id,
                    result=answered_by,
                    machine=answered_by in MACHINE_ANSWERS,
                    detection_ms=ms,
                )
            )
        return web.Response(status=204)
