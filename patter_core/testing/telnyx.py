"""A simulated Telnyx: its Call Control API and its side of each call, on loopback.

It behaves as Telnyx does on the wire (protocols.md §5–6): webhooks are JSON
events signed with a real Ed25519 key over ``{timestamp}|{body}`` (give the
server under test ``public_key``), an inbound call is parked until the server
sends ``answer`` with a stream URL (or ``streaming_start``), the media socket
gets ``connected``/``start`` and then 20 ms ``media`` frames in real time in
the requested codec, agent audio is played out on a clock, marks are echoed
when playback reaches them, and ``clear`` drops unplayed audio.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from aiohttp import web
from nacl.signing import SigningKey

from patter_core.testing.reactions import Reactions
from patter_core.testing.twilio import CallRefused, SimulatedCall, tone_mulaw

log = logging.getLogger(__name__)

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
WEBHOOK_PATH = "/webhooks/telnyx/voice"
RATES = {"PCMU": 8000, "PCMA": 8000, "L16": 16000}
# reject's causes, and the hangup_cause of the call.hangup that follows each.
REJECT_CAUSES = {"USER_BUSY": "user_busy", "CALL_REJECTED": "call_rejected"}


def tone_for(codec: str, freq: float = 440.0, seconds: float = 1.0, amplitude: int = 8000) -> bytes:
    """A sine tone in a Telnyx stream codec (L16 is 16 kHz, big-endian)."""
    if codec == "L16":
        t = np.arange(int(16000 * seconds)) / 16000
        return (np.sin(2 * np.pi * freq * t) * amplitude).astype(">i2").tobytes()
    return tone_mulaw(freq, seconds, amplitude)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _ccid() -> str:
    return "v3:" + secrets.token_urlsafe(24)


@dataclass
class SimulatedTelnyxCall(SimulatedCall):
    """Telnyx's side of one media stream (``call_sid`` holds the call_control_id)."""

    codec: str = "PCMU"
    client_state: str | None = None
    sim: SimulatedTelnyx | None = None

    async def start(self, account_sid: str = "") -> None:
        await self._send({"event": "connected", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequence_number": self._next_seq(),
                "stream_id": self.stream_sid,
                "start": {
                    "user_id": str(uuid.uuid4()),
                    "call_control_id": self.call_sid,
                    "client_state": self.client_state,
                    "from": self.custom_parameters.get("from", ""),
                    "to": self.custom_parameters.get("to", ""),
                    "media_format": {
                        "encoding": self.codec,
                        "sample_rate": RATES.get(self.codec, 8000),
                        "channels": 1,
                    },
                },
            }
        )
        self._started = time.monotonic()
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._clock())]

    def _media_message(self, frame: bytes, tick: int) -> dict[str, Any]:
        return {
            "event": "media",
            "sequence_number": self._next_seq(),
            "stream_id": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(tick * 20),
                "payload": base64.b64encode(frame).decode(),
            },
        }

    def _mark_message(self, name: str) -> dict[str, Any]:
        return {
            "event": "mark",
            "sequence_number": self._next_seq(),
            "stream_id": self.stream_sid,
            "mark": {"name": name},
        }

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return {
            "event": "dtmf",
            "sequence_number": self._next_seq(),
            "stream_id": self.stream_sid,
            "occurred_at": _now_iso(),
            "dtmf": {"digit": digit},
        }

    def _stop_message(self) -> dict[str, Any]:
        return {
            "event": "stop",
            "sequence_number": self._next_seq(),
            "stream_id": self.stream_sid,
            "stop": {"user_id": "", "call_control_id": self.call_sid},
        }

    async def send_dtmf(self, digit: str) -> None:
        """A key press: Telnyx reports it on the stream and as a webhook."""
        await super().send_dtmf(digit)
        if self.sim is not None:
            await self.sim.post_call_event(self.call_sid, "call.dtmf.received", {"digit": digit})

    async def hangup(self, cause: str = "normal_clearing") -> None:
        """The caller hangs up: ``stop``, socket closed, then the ``call.hangup`` webhook."""
        await super().hangup()
        if self.sim is not None:
            await self.sim.end_call(self.call_sid, cause)


class SimulatedTelnyx:
    """Telnyx for one test: a Call Control API on loopback plus the carrier side of calls.

    ``server_url`` is where the Patter server under test really listens; every
    webhook is signed with ``signing_key``, whose public half is ``public_key``.
    """

    def __init__(
        self,
        *,
        api_key: str = "KEYsimulated-telnyx-api-key",
        connection_id: str = "1494404757140276705",
        public_host: str = "agent.patter.test",
        offered_codecs: str = "PCMU,PCMA",
        amd_result: str | None = "human",
        greeting_result: str | None = None,
        amd_delay_s: float = 0.3,
    ) -> None:
        self.api_key = api_key
        self.connection_id = connection_id
        self.public_host = public_host
        self.offered_codecs = offered_codecs
        self.amd_result = amd_result
        self.greeting_result = greeting_result
        self.amd_delay_s = amd_delay_s
        self.signing_key = SigningKey.generate()
        self.public_key = base64.b64encode(bytes(self.signing_key.verify_key)).decode()
        self.server_url = ""
        self.api_url = ""
        self.applications = {
            connection_id: {
                "id": connection_id,
                "application_name": "simulated app",
                "webhook_event_url": None,
            }
        }
        self.commands: list[dict[str, Any]] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.streams: dict[str, SimulatedTelnyxCall] = {}
        self.fail_next: dict[str, tuple[int, str, str]] = {}
        self._waiters: dict[tuple[str, str], asyncio.Future[dict[str, Any]]] = {}
        self._stream_waiters: dict[str, asyncio.Future[SimulatedTelnyxCall]] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reactions = Reactions()

    async def __aenter__(self) -> SimulatedTelnyx:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v2/calls", self._dial)
        app.router.add_post("/v2/calls/{ccid}/actions/{action}", self._action)
        app.router.add_get("/v2/call_control_applications/{id}", self._get_app)
        app.router.add_patch("/v2/call_control_applications/{id}", self._patch_app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}/v2"
        self._session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)

    async def close(self) -> None:
        for call in list(self.streams.values()):
            await call._shutdown()
        await self._reactions.cancel()
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Any, *, brief: bool = False) -> None:
        self._reactions.spawn(coro, brief=brief)

    async def settle(self, timeout: float = 5.0) -> None:
        """Let the hang-ups and webhooks already under way finish, as a real carrier would."""
        await self._reactions.settle(timeout)

    # --- webhooks to the server under test ---------------------------------------------

    def sign(self, body: bytes, timestamp: int | str, key: SigningKey | None = None) -> str:
        message = str(timestamp).encode() + b"|" + body
        signed = (key or self.signing_key).sign(message)
        return base64.b64encode(signed.signature).decode()

    @staticmethod
    def envelope(event_type: str, payload: dict[str, Any], event_id: str | None = None) -> bytes:
        return json.dumps(
            {
                "data": {
                    "record_type": "event",
                    "event_type": event_type,
                    "id": event_id or str(uuid.uuid4()),
                    "occurred_at": _now_iso(),
                    "payload": payload,
                },
                "meta": {"attempt": 1, "delivered_to": ""},
            }
        ).encode()

    async def post_raw(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
        path: str = WEBHOOK_PATH,
    ) -> tuple[int, str]:
        """POST a webhook body as Telnyx would (signed now unless told otherwise)."""
        assert self._session is not None
        ts = int(time.time()) if timestamp is None else timestamp
        hdrs = {
            "Content-Type": "application/json",
            "telnyx-timestamp": str(ts),
            "telnyx-signature-ed25519": self.sign(body, ts) if signature is None else signature,
        }
        hdrs.update(headers or {})
        async with self._session.post(self.server_url + path, data=body, headers=hdrs) as resp:
            return resp.status, await resp.text()

    async def post_event(
        self, event_type: str, payload: dict[str, Any], *, event_id: str | None = None, **kw: Any
    ) -> tuple[int, str]:
        return await self.post_raw(self.envelope(event_type, payload, event_id), **kw)

    def _payload(self, ccid: str, extra: dict[str, Any]) -> dict[str, Any]:
        call = self.calls[ccid]
        return {
            "call_control_id": ccid,
            "call_leg_id": call["leg_id"],
            "call_session_id": call["session_id"],
            "connection_id": self.connection_id,
            "client_state": call.get("client_state"),
            "from": call["from"],
            "to": call["to"],
            **extra,
        }

    async def post_call_event(
        self, ccid: str, event_type: str, extra: dict[str, Any] | None = None
    ) -> tuple[int, str]:
        call = self.calls[ccid]
        path = call.get("webhook_path", WEBHOOK_PATH)
        return await self.post_event(event_type, self._payload(ccid, extra or {}), path=path)

    async def end_call(self, ccid: str, cause: str = "normal_clearing") -> None:
        call = self.calls.get(ccid)
        if call is None or not call["alive"]:
            return
        call["alive"] = False
        stream = self.streams.get(ccid)
        if stream is not None and not stream.ws.closed:
            await SimulatedCall.hangup(stream)  # the call is over: so is its stream
        await self.post_call_event(
            ccid, "call.hangup", {"hangup_cause": cause, "hangup_source": "caller"}
        )

    def _new_call(self, from_: str, to: str, client_state: str | None = None) -> str:
        ccid = _ccid()
        self.calls[ccid] = {
            "from": from_,
            "to": to,
            "leg_id": str(uuid.uuid4()),
            "session_id": str(uuid.uuid4()),
            "client_state": client_state,
            "alive": True,
        }
        return ccid

    def _wait_command(self, ccid: str, action: str) -> asyncio.Future[dict[str, Any]]:
        fut = asyncio.get_running_loop().create_future()
        self._waiters[(ccid, action)] = fut
        return fut

    async def inbound_call(
        self,
        from_: str = "+15550009999",
        to: str = "+15550001234",
        *,
        offered_codecs: str | None = None,
        timeout: float = 10.0,
    ) -> SimulatedTelnyxCall:
        """A caller dials ``to``: ``call.initiated``, the server's ``answer``, the stream."""
        ccid = self._new_call(from_, to)
        answered = self._wait_command(ccid, "answer")
        rejected = self._wait_command(ccid, "reject")
        streaming = self._wait_command(ccid, "streaming_start")
        status, text = await self.post_call_event(
            ccid,
            "call.initiated",
            {
                "direction": "incoming",
                "state": "parked",
                "caller_id_name": "",
                "offered_codecs": offered_codecs or self.offered_codecs,
                "start_time": _now_iso(),
            },
        )
        if status != 200:
            raise RuntimeError(f"call.initiated answered {status}: {text.strip()}")
        done, _ = await asyncio.wait(
            [answered, rejected], timeout=timeout, return_when="FIRST_COMPLETED"
        )
        if not done:
            raise TimeoutError(f"the server neither answered nor rejected {ccid} in {timeout:g} s")
        if rejected in done:
            answered.cancel()
            raise CallRefused("busy" if rejected.result()["cause"] == "USER_BUSY" else "rejected")
        rejected.cancel()
        answer = answered.result()
        self.calls[ccid]["client_state"] = answer.get("client_state")
        params = answer if answer.get("stream_url") else await asyncio.wait_for(streaming, timeout)
        self._spawn(self.post_call_event(ccid, "call.answered", {"state": "answered"}))
        return await self.open_stream(ccid, params)

    async def open_stream(self, ccid: str, params: dict[str, Any]) -> SimulatedTelnyxCall:
        assert self._session is not None
        if params.get("stream_bidirectional_mode") != "rtp":
            raise RuntimeError("stream is not bidirectional (stream_bidirectional_mode != rtp)")
        path = urlsplit(str(params["stream_url"])).path
        ws = await self._session.ws_connect(self.server_url.replace("http://", "ws://", 1) + path)
        codec = str(params.get("stream_bidirectional_codec") or "PCMU")
        rate = RATES.get(codec, 8000)
        frame = rate // 50 * (2 if codec == "L16" else 1)
        call_info = self.calls[ccid]
        call = SimulatedTelnyxCall(
            call_sid=ccid,
            stream_sid=str(uuid.uuid4()).upper(),
            ws=ws,
            custom_parameters={"from": call_info["from"], "to": call_info["to"]},
            frame_bytes=frame,
            silence=(b"\x00" if codec == "L16" else b"\xff") * frame,
            codec=codec,
            client_state=call_info.get("client_state"),
            sim=self,
        )
        self.streams[ccid] = call
        await call.start()
        if not call_info["alive"]:
            # The call ended while its stream was connecting: Telnyx stops the stream.
            await SimulatedCall.hangup(call)
        waiter = self._stream_waiters.pop(ccid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(call)
        return call

    async def wait_stream(self, ccid: str, timeout: float = 10.0) -> SimulatedTelnyxCall:
        """The stream of an outbound call, once the simulated callee has answered."""
        if ccid in self.streams:
            return self.streams[ccid]
        fut = self._stream_waiters.setdefault(ccid, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    # --- the Call Control API ---------------------------------------------------------

    @staticmethod
    def _error(status: int, code: str, title: str, detail: str = "") -> web.Response:
        return web.json_response(
            {"errors": [{"code": code, "title": title, "detail": detail or title}]}, status=status
        )

    async def _record(
        self, request: web.Request, action: str, ccid: str = ""
    ) -> tuple[dict[str, Any], web.Response | None]:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = None
        entry = {"action": action, "call_control_id": ccid, "body": body}
        self.commands.append(entry)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return entry, self._error(401, "10009", "Authentication failed")
        if not isinstance(body, dict):
            return entry, self._error(400, "10015", "Bad Request", "body is not a JSON object")
        if action in self.fail_next:
            status, code, title = self.fail_next.pop(action)
            return entry, self._error(status, code, title)
        return entry, None

    def commands_of(self, action: str) -> list[dict[str, Any]]:
        return [c for c in self.commands if c["action"] == action]

    @staticmethod
    def _ok() -> web.Response:
        return web.json_response({"data": {"result": "ok"}})

    async def _dial(self, request: web.Request) -> web.Response:
        entry, denied = await self._record(request, "dial")
        if denied is not None:
            return denied
        body = entry["body"]
        missing = [k for k in ("connection_id", "to", "from") if not body.get(k)]
        if missing:
            return self._error(422, "10032", "Missing required parameter", ", ".join(missing))
        if body["connection_id"] != self.connection_id:
            return self._error(422, "10010", "Invalid connection_id")
        ccid = self._new_call(body["from"], body["to"], body.get("client_state"))
        self.calls[ccid]["outgoing"] = True
        entry["call_control_id"] = ccid
        if body.get("webhook_url"):
            self.calls[ccid]["webhook_path"] = urlsplit(body["webhook_url"]).path
        self._spawn(self._ring(ccid, body))
        call = self.calls[ccid]
        return web.json_response(
            {
                "data": {
                    "call_control_id": ccid,
                    "call_leg_id": call["leg_id"],
                    "call_session_id": call["session_id"],
                    "is_alive": False,
                    "record_type": "call",
                }
            }
        )

    async def _ring(self, ccid: str, body: dict[str, Any]) -> None:
        """Play the callee answering: initiated, answered, the stream, then AMD verdicts."""
        try:
            await self.post_call_event(
                ccid, "call.initiated", {"direction": "outgoing", "state": "bridging"}
            )
            await self.post_call_event(ccid, "call.answered", {"state": "answered"})
            if body.get("stream_url") and self.calls[ccid]["alive"]:
                await self.open_stream(ccid, body)
            if body.get("record") == "record-from-answer":
                # Recorded from the answer on; saved here rather than at the
                # hang-up, as the simulator keeps no recording of its own.
                self._spawn(self._recording_saved(ccid, body.get("record_format", "wav")))
            amd = body.get("answering_machine_detection", "disabled")
            if amd != "disabled" and self.amd_result is not None:
                await asyncio.sleep(self.amd_delay_s)
                if not self.calls[ccid]["alive"]:
                    return  # hung up before the verdict: there is none
                await self.post_call_event(
                    ccid, "call.machine.detection.ended", {"result": self.amd_result}
                )
                if self.greeting_result is not None:
                    await self.post_call_event(
                        ccid, "call.machine.greeting.ended", {"result": self.greeting_result}
                    )
        except Exception:
            log.exception("simulated call %s failed", ccid)

    async def _action(self, request: web.Request) -> web.Response:
        ccid = request.match_info["ccid"]
        action = request.match_info["action"]
        entry, denied = await self._record(request, action, ccid)
        if denied is not None:
            return denied
        call = self.calls.get(ccid)
        if call is None or not call["alive"]:
            return self._error(422, "90018", "Call has already ended")
        body = entry["body"]
        if action == "answer":
            call["answered"] = True
        elif action == "reject":
            if call.get("answered") or call.get("outgoing"):
                return self._error(422, "90015", "Call is not in a state that can be rejected")
            if body.get("cause") not in REJECT_CAUSES:
                return self._error(422, "10032", "Missing required parameter", "cause")
            self._spawn(self.end_call(ccid, REJECT_CAUSES[body["cause"]]), brief=True)
        elif action == "streaming_start":
            if not body.get("stream_url"):
                return self._error(422, "10032", "Missing required parameter", "stream_url")
        elif action in ("hangup", "transfer"):
            if action == "transfer" and not body.get("to"):
                return self._error(422, "10032", "Missing required parameter", "to")
            stream = self.streams.get(ccid)
            if stream is not None:
                self._spawn(stream.hangup(), brief=True)
            else:
                self._spawn(self.end_call(ccid), brief=True)
        elif action == "record_start":
            if body.get("format") not in ("wav", "mp3") or body.get("channels") not in (
                "single",
                "dual",
            ):
                return self._error(422, "10032", "Missing required parameter", "format/channels")
            self._spawn(self._recording_saved(ccid, body["format"]), brief=True)
        elif action == "send_dtmf":
            if not body.get("digits"):
                return self._error(422, "10032", "Missing required parameter", "digits")
        else:
            return self._error(404, "10005", "Resource not found")
        waiter = self._waiters.pop((ccid, action), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(body)
        return self._ok()

    async def _recording_saved(self, ccid: str, fmt: str) -> None:
        rec_id = str(uuid.uuid4())
        base = f"{self.api_url}/recordings/{rec_id}"
        payload = self._payload(ccid, {})
        del payload["call_control_id"]  # the SDK's type has none on this event
        payload |= {
            "recording_id": rec_id,
            "channels": "single",
            "recording_started_at": "2024-01-15T10:30:00Z",
            "recording_ended_at": "2024-01-15T10:30:03Z",
            "recording_urls": {fmt: f"{base}.{fmt}"},
            "public_recording_urls": {},
        }
        await asyncio.sleep(0.05)
        await self.post_event(
            "call.recording.saved", payload, path=self.calls[ccid].get("webhook_path", WEBHOOK_PATH)
        )

    async def _get_app(self, request: web.Request) -> web.Response:
        _, denied = await self._record(request, "get_application")
        if denied is not None:
            return denied
        app = self.applications.get(request.match_info["id"])
        if app is None:
            return self._error(404, "10005", "Resource not found")
        return web.json_response({"data": app})

    async def _patch_app(self, request: web.Request) -> web.Response:
        entry, denied = await self._record(request, "update_application")
        if denied is not None:
            return denied
        app = self.applications.get(request.match_info["id"])
        if app is None:
            return self._error(404, "10005", "Resource not found")
        body = entry["body"]
        if not body.get("application_name") or not body.get("webhook_event_url"):
            return self._error(422, "10032", "Missing required parameter")
        app.update(body)
        return web.json_response({"data": app})
