"""Telnyx Call Control webhooks: signed JSON events in, commands and typed events out.

Every request is checked the same way before anything else happens: size,
then the Ed25519 signature over the raw body (when a public key is set), then
the JSON envelope. Bad input gets a 4xx with a short reason and a log line,
never a 500. Telnyx wants a 2xx within 2 s and delivers duplicates, so
commands (answer) run in the background and each event id is handled once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from patter_core.carriers.base import CarrierError
from patter_core.carriers.telnyx.config import Carrier
from patter_core.carriers.telnyx.control import TelnyxControl, decode_client_state
from patter_core.carriers.telnyx.leg import CODECS, TelnyxLeg, choose_codec
from patter_core.carriers.telnyx.signature import SignatureError, load_public_key, verify
from patter_core.events import AmdResult, Dtmf, ErrorEvent, RecordingReady
from patter_core.server.registry import CallRecord

if TYPE_CHECKING:
    from patter_core.server.app import PatterServer

log = logging.getLogger(__name__)

PATH = "/webhooks/telnyx/voice"
SEEN_EVENTS = 10_000  # event ids remembered for de-duplication
AMD_EVENTS = frozenset(
    {
        "call.machine.detection.ended",
        "call.machine.greeting.ended",
        "call.machine.premium.detection.ended",
        "call.machine.premium.greeting.ended",
    }
)
NOT_MACHINE = frozenset({"human", "human_residence", "human_business", "not_sure", "silence"})


class WebhookRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else ""


def _seconds_between(start: str, end: str) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


class TelnyxRoutes:
    name = "telnyx"

    def __init__(self, carrier: Carrier, control: TelnyxControl | None = None) -> None:
        self.carrier = carrier
        self.control = control
        self._key = load_public_key(carrier.public_key) if carrier.public_key else None
        self._warned_unsigned = False
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: PatterServer | None = None
        self.duplicates = 0

    def install(self, app: web.Application, server: PatterServer) -> None:
        self.server = server
        app.router.add_post(PATH, self._handle)
        app.on_cleanup.append(self._cleanup)

    def make_leg(self, ws: web.WebSocketResponse, record: CallRecord) -> TelnyxLeg:
        return TelnyxLeg(ws, record.call_id, codec=record.options.get("telnyx_codec", "PCMU"))

    async def _cleanup(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- request checks -----------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            data = await self._verified_event(request)
            event_id = _text(data, "id")
            if event_id and event_id in self._seen:
                self.duplicates += 1
                log.debug("telnyx event %s delivered again; ignored", event_id)
                return web.Response(status=200)
            await self._dispatch(data["event_type"], data["payload"])
            if event_id:
                self._seen[event_id] = None
                while len(self._seen) > SEEN_EVENTS:
                    self._seen.popitem(last=False)
            return web.Response(status=200)
        except WebhookRejected as exc:
            log.warning("telnyx webhook rejected (%d): %s", exc.status, exc.reason)
            return web.Response(status=exc.status, text=exc.reason + "\n")

    async def _verified_event(self, request: web.Request) -> dict[str, Any]:
        assert self.server is not None
        config = self.server.config
        if request.content_length is not None and request.content_length > config.max_body_bytes:
            raise WebhookRejected(413, "body too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise WebhookRejected(413, "body too large") from None
        if self._key is not None and config.require_signature:
            try:
                verify(self._key, request.headers, body)
            except SignatureError as exc:
                raise WebhookRejected(403, f"invalid signature: {exc}") from None
        elif not self._warned_unsigned:
            self._warned_unsigned = True
            log.warning(
                "telnyx webhook signatures are NOT being checked "
                "(set TELNYX_PUBLIC_KEY or Telnyx(public_key=...))"
            )
        try:
            envelope = json.loads(body)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise WebhookRejected(400, "body is not JSON") from None
        data = envelope.get("data") if isinstance(envelope, dict) else None
        if not isinstance(data, dict):
            raise WebhookRejected(400, "missing data")
        if not isinstance(data.get("event_type"), str) or not data["event_type"]:
            raise WebhookRejected(400, "missing data.event_type")
        if not isinstance(data.get("payload"), dict):
            raise WebhookRejected(400, "missing data.payload")
        return data

    # --- events -----------------------------------------------------------------------

    def _record_for(self, payload: Mapping[str, Any]) -> CallRecord | None:
        assert self.server is not None
        registry = self.server.registry
        ccid = _text(payload, "call_control_id")
        call_id = decode_client_state(payload.get("client_state"))
        record = registry.get(call_id) if call_id else None
        if record is not None and record.carrier != self.name:
            record = None
        if record is None and ccid:
            record = registry.by_carrier_id(ccid)
        elif record is not None and ccid and not record.carrier_call_id:
            registry.bind_carrier_id(record, ccid)
        return record

    async def _dispatch(self, event_type: str, payload: dict[str, Any]) -> None:
        needs_ccid = event_type.startswith("call.") and event_type != "call.recording.saved"
        if needs_ccid and not _text(payload, "call_control_id"):
            raise WebhookRejected(400, "missing payload.call_control_id")
        if event_type == "call.initiated":
            await self._initiated(payload)
            return
        record = self._record_for(payload)
        if record is None:
            log.debug("telnyx %s for a call we do not know; ignored", event_type)
            return
        if event_type == "call.answered":
            record.answered = True
        elif event_type == "call.hangup":
            self._hangup(record, payload)
        elif event_type in AMD_EVENTS:
            await self._amd(record, payload)
        elif event_type == "call.dtmf.received":
            self._dtmf(record, payload)
        elif event_type == "call.recording.saved":
            self._recording(record, payload)
        elif event_type == "streaming.failed":
            reason = _text(payload, "failure_reason") or "unknown"
            log.warning("call %s: telnyx media stream failed: %s", record.call_id, reason)
            assert self.server is not None
            self.server.bus.publish(
                ErrorEvent(call_id=record.call_id, code="stream_failed", message=reason)
            )
        else:  # streaming.started/stopped, playback, bridged, ...: nothing to do
            log.debug("call %s: telnyx %s", record.call_id, event_type)

    async def _initiated(self, payload: dict[str, Any]) -> None:
        assert self.server is not None
        ccid = payload["call_control_id"]
        if payload.get("direction") != "incoming":
            self._record_for(payload)  # our own dial: bind its call_control_id
            return
        if self.server.registry.by_carrier_id(ccid) is not None:
            return  # a re-delivery under a new event id
        caller, callee = _text(payload, "from"), _text(payload, "to")
        if not caller or not callee:
            raise WebhookRejected(400, "missing from or to")
        refusal = self.server.admission()
        if refusal is not None:
            self.server.record_refused(
                carrier=self.name,
                caller=caller,
                callee=callee,
                carrier_call_id=ccid,
                reason=refusal,
            )
            self._spawn(self._reject(ccid))
            return
        record = self.server.registry.new(
            direction="inbound",
            carrier=self.name,
            caller=caller,
            callee=callee,
            carrier_call_id=ccid,
        )
        record.options["telnyx_codec"] = choose_codec(payload.get("offered_codecs"))
        log.info("inbound call %s from telnyx %s", record.call_id, ccid)
        await self.server.call_arrived(record)
        self._spawn(self._answer(record))

    async def _reject(self, call_control_id: str) -> None:
        """Refuse before answering: the caller hears busy and nothing is billed."""
        if self.control is None:
            self.control = TelnyxControl(self.carrier)
        try:
            await self.control.reject(call_control_id, cause="USER_BUSY")
        except CarrierError as exc:
            log.warning("could not reject telnyx call %s: %s", call_control_id, exc)

    async def _answer(self, record: CallRecord) -> None:
        """Answer with the media stream; L16 needs a separate streaming_start for its rate."""
        assert self.server is not None
        if self.control is None:
            self.control = TelnyxControl(self.carrier)
        codec = record.options["telnyx_codec"]
        url = self.server.stream_url(record)
        try:
            if codec == "PCMU":
                await self.control.answer(
                    record.carrier_call_id, call_id=record.call_id, stream_url=url
                )
            else:
                await self.control.answer(record.carrier_call_id, call_id=record.call_id)
                await self.control.streaming_start(
                    record.carrier_call_id,
                    url,
                    codec=codec,
                    sample_rate=CODECS[codec].sample_rate,
                )
        except CarrierError as exc:
            log.warning("call %s: could not answer: %s", record.call_id, exc)
            self.server.end_unstreamed(record, "failed", "failed")

    def _hangup(self, record: CallRecord, payload: Mapping[str, Any]) -> None:
        cause = _text(payload, "hangup_cause") or "unspecified"
        session = record.session
        if session is not None:
            session.end("hangup")  # the stream's stop usually says so first
        else:
            assert self.server is not None
            self.server.end_unstreamed(record, cause, cause)

    async def _amd(self, record: CallRecord, payload: Mapping[str, Any]) -> None:
        assert self.server is not None
        result = _text(payload, "result").strip().lower()
        if not result:
            return
        session = record.session
        if session is not None:
            # Detection, then the greeting's end (beep): the session needs both.
            await session.on_amd(result)
            return
        if record.amd_verdict is not None:
            return
        record.amd_verdict = result
        self.server.bus.publish(
            AmdResult(call_id=record.call_id, result=result, machine=result not in NOT_MACHINE)
        )

    def _dtmf(self, record: CallRecord, payload: Mapping[str, Any]) -> None:
        """Digits come on the media stream too: the webhook counts only when none runs."""
        assert self.server is not None
        digit = _text(payload, "digit")
        if record.session is not None or len(digit) != 1:
            return
        self.server.bus.publish(Dtmf(call_id=record.call_id, digit=digit))

    def _recording(self, record: CallRecord, payload: Mapping[str, Any]) -> None:
        assert self.server is not None
        url = ""
        for key in ("recording_urls", "public_recording_urls"):
            urls = payload.get(key)
            if isinstance(urls, dict):
                url = _text(urls, "wav") or _text(urls, "mp3")
            if url:
                break
        self.server.bus.publish(
            RecordingReady(
                call_id=record.call_id,
                url=url,
                recording_id=_text(payload, "recording_id"),
                duration_s=_seconds_between(
                    _text(payload, "recording_started_at"), _text(payload, "recording_ended_at")
                ),
            )
        )
