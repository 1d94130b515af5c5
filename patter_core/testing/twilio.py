"""A simulated Twilio: its REST API and its side of each call, on loopback.

It behaves as Twilio does on the wire (protocols.md §1–4): webhooks are form
POSTs signed with the ``twilio`` package's own validator over the public URL,
the TwiML answer is parsed for ``<Connect><Stream>``, the media socket gets
``connected``/``start`` and then 20 ms µ-law ``media`` frames in real time,
outbound audio is played out on a clock, marks are echoed when playback
reaches them, and ``clear`` drops unplayed audio and echoes pending marks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
from aiohttp import web
from twilio.request_validator import RequestValidator
from yarl import URL

from patter_core.audio.g711 import ulaw_encode
from patter_core.testing.reactions import Reactions

log = logging.getLogger(__name__)

FRAME = 160  # 20 ms of µ-law at 8 kHz
SILENCE = b"\xff" * FRAME
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


class CallRefused(RuntimeError):
    """The server refused the call before answering it (TwiML ``<Reject>``; Telnyx
    ``reject``); ``reason`` is what the caller hears: ``busy`` or ``rejected``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the call was refused ({reason})")
        self.reason = reason


def tone_mulaw(freq: float = 440.0, seconds: float = 1.0, amplitude: int = 8000) -> bytes:
    t = np.arange(int(8000 * seconds)) / 8000
    return ulaw_encode((np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16))


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class SimulatedCall:
    """Twilio's side of one media stream."""

    call_sid: str
    stream_sid: str
    ws: aiohttp.ClientWebSocketResponse
    custom_parameters: dict[str, str]
    heard: bytearray = field(default_factory=bytearray)
    marks: list[str] = field(default_factory=list)
    clears: int = 0
    media_received: int = 0
    closed_code: int | None = None
    frame_bytes: int = FRAME
    silence: bytes = SILENCE
    _playout: deque[bytes | str] = field(default_factory=deque)
    _caller: deque[bytes] = field(default_factory=deque)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _seq: int = 0
    _chunk: int = 0
    _started: float = 0.0
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _heard_changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(json.dumps(message))

    async def start(self, account_sid: str) -> None:
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": self.custom_parameters,
                },
            }
        )
        self._started = time.monotonic()
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._clock())]

    def say(self, audio: bytes) -> None:
        """Queue caller audio (wire format); it goes out in 20 ms frames, silence between."""
        n = self.frame_bytes
        for i in range(0, len(audio), n):
            self._caller.append(audio[i : i + n].ljust(n, self.silence[:1]))

    @property
    def caller_queue_empty(self) -> bool:
        return not self._caller

    async def send_dtmf(self, digit: str) -> None:
        await self._send(self._dtmf_message(digit))

    # --- message shapes (a subclass for another carrier overrides these) -----------

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        return {
            "event": "dtmf",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "dtmf": {"track": "inbound_track", "digit": digit},
        }

    def _media_message(self, frame: bytes, tick: int) -> dict[str, Any]:
        return {
            "event": "media",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
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
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "mark": {"name": name},
        }

    def _stop_message(self) -> dict[str, Any]:
        return {
            "event": "stop",
            "sequenceNumber": self._next_seq(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": "", "callSid": self.call_sid},
        }

    async def send_raw(self, data: str | bytes) -> None:
        """Anything at all, for tests of bad input."""
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def _clock(self) -> None:
        """20 ms ticks: send one caller frame, play one agent frame, echo reached marks."""
        tick = 0
        while not self.ws.closed:
            tick += 1
            frame = self._caller.popleft() if self._caller else self.silence
            self._chunk += 1
            await self._send(self._media_message(frame, tick))
            await self._play(self.frame_bytes)
            await asyncio.sleep(max(self._started + tick * 0.02 - time.monotonic(), 0))

    async def _play(self, budget: int) -> None:
        """Play ``budget`` bytes of queued agent audio; echo each mark playback reaches."""
        while self._playout:
            head = self._playout[0]
            if isinstance(head, str):
                self._playout.popleft()
                await self._echo_mark(head)
                continue
            if budget <= 0:
                break
            take = head[:budget]
            self.heard += take
            budget -= len(take)
            if len(take) == len(head):
                self._playout.popleft()
            else:
                self._playout[0] = head[len(take) :]
        self._heard_changed.set()

    async def _echo_mark(self, name: str) -> None:
        self.marks.append(name)
        await self._send(self._mark_message(name))

    async def _receive(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                kind = data.get("event")
                if kind == "media":
                    self.media_received += 1
                    self._playout.append(base64.b64decode(data["media"]["payload"]))
                elif kind == "mark":
                    self._playout.append(str(data["mark"]["name"]))
                elif kind == "clear":
                    self.clears += 1
                    pending = [x for x in self._playout if isinstance(x, str)]
                    self._playout.clear()
                    for name in pending:
                        await self._echo_mark(name)
        finally:
            self.closed_code = self.ws.close_code
            self._done.set()

    async def wait_heard(self, n_bytes: int, timeout: float = 10.0) -> bytes:
        """Wait until the caller has heard ``n_bytes`` of agent audio."""
        async with asyncio.timeout(timeout):
            while len(self.heard) < n_bytes:
                self._heard_changed.clear()
                await self._heard_changed.wait()
        return bytes(self.heard)

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        async with asyncio.timeout(timeout):
            await self._done.wait()
        return self.closed_code

    async def hangup(self) -> None:
        """The caller hangs up: ``stop``, then the socket closes."""
        await self._send(self._stop_message())
        await self._shutdown()

    async def drop(self) -> None:
        """The network fails: the TCP connection is cut with no ``stop`` and no close frame."""
        for task in self._tasks:
            task.cancel()
        conn = getattr(getattr(self.ws, "_response", None), "connection", None)
        transport = getattr(conn, "transport", None)
        if transport is not None:
            transport.abort()
        await self._shutdown()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 2)
        self._done.set()


class SimulatedTwilio:
    """Twilio for one test: a REST API on loopback plus the carrier side of calls.

    ``server_url`` is where the Patter server under test really listens
    (``http://127.0.0.1:PORT``); ``public_host`` is the hostname it believes
    Twilio uses, which is what every signature is computed over.
    """

    def __init__(
        self,
        *,
        account_sid: str = "AC" + "0" * 31 + "1",
        auth_token: str = "simulated-auth-token",
        public_host: str = "agent.patter.test",
        phone_numbers: tuple[str, ...] = ("+15550001234",),
        answered_by: str | None = "human",
        amd_delay_s: float = 0.3,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.public_host = public_host
        self.server_url = ""
        self.numbers = {
            n: {"sid": _sid("PN"), "phone_number": n, "voice_url": None, "voice_method": "POST"}
            for n in phone_numbers
        }
        self.answered_by = answered_by
        self.amd_delay_s = amd_delay_s
        self.requests: list[dict[str, Any]] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.streams: dict[str, SimulatedCall] = {}
        self.fail_next: dict[str, tuple[int, int, str]] = {}
        self._validator = RequestValidator(auth_token)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reactions = Reactions()
        self._stream_waiters: dict[str, asyncio.Future[SimulatedCall]] = {}
        self.api_url = ""

    async def __aenter__(self) -> SimulatedTwilio:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        base = "/2010-04-01/Accounts/{account}"
        app.router.add_post(base + "/Calls.json", self._create_call)
        app.router.add_get(base + "/Calls/{sid}.json", self._fetch_call)
        app.router.add_post(base + "/Calls/{sid}.json", self._update_call)
        app.router.add_post(base + "/Calls/{sid}/Recordings.json", self._create_recording)
        app.router.add_get(base + "/IncomingPhoneNumbers.json", self._list_numbers)
        app.router.add_post(base + "/IncomingPhoneNumbers/{sid}.json", self._update_number)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}"
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

    # --- webhooks to the server under test ---------------------------------------

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        return str(self._validator.compute_signature(url, dict(params)))

    def webhook_url(self, kind: str, query: str = "") -> str:
        return f"https://{self.public_host}/webhooks/twilio/{kind}" + (f"?{query}" if query else "")

    def _local(self, public_url: str) -> URL:
        """``public_url`` moved onto the server under test, its path and query byte for byte.

        Twilio requests the URL exactly as it was given (and signs that string), so
        nothing here may re-quote it: ``encoded=True`` keeps ``%2f``, ``%41``, ``+``
        and an empty ``?`` as they are.
        """
        parts = urlsplit(public_url)
        tail = public_url.split("#", 1)[0][len(f"{parts.scheme}://{parts.netloc}") :]
        return URL(f"{self.server_url}{tail or '/'}", encoded=True)

    async def post_webhook(
        self,
        public_url: str,
        params: Mapping[str, str],
        *,
        signature: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, str]:
        """POST a webhook as Twilio would (signed over ``public_url``); returns (status, text)."""
        assert self._session is not None
        sig = self.sign(public_url, params) if signature is None else signature
        hdrs = {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}
        hdrs.update(headers or {})
        data: Any = body if body is not None else dict(params)
        async with self._session.post(self._local(public_url), data=data, headers=hdrs) as resp:
            return resp.status, await resp.text()

    async def inbound_call(
        self, from_: str = "+15550009999", to: str = "+15550001234"
    ) -> SimulatedCall:
        """A caller dials ``to``: signed voice webhook, TwiML read, media stream opened."""
        params = {
            "CallSid": _sid("CA"),
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "CallStatus": "ringing",
            "ApiVersion": "2010-04-01",
            "Direction": "inbound",
            "ForwardedFrom": "",
            "CallerName": "",
        }
        return await self._answer(self.webhook_url("voice"), params)

    async def _answer(self, voice_url: str, params: dict[str, str]) -> SimulatedCall:
        status, twiml = await self.post_webhook(voice_url, params)
        if status != 200:
            raise RuntimeError(f"voice webhook answered {status}: {twiml.strip()}")
        call = self.calls.get(params["CallSid"])
        if call is not None and call["status"] == "completed":
            raise RuntimeError("call was hung up before its stream opened")
        refused = rejected_by(twiml)
        if refused is not None:
            raise CallRefused(refused)
        url, custom = parse_stream_twiml(twiml)
        return await self.open_stream(url, params["CallSid"], custom)

    async def open_stream(
        self, public_ws_url: str, call_sid: str, custom: dict[str, str] | None = None
    ) -> SimulatedCall:
        assert self._session is not None
        path = urlsplit(public_ws_url).path
        ws = await self._session.ws_connect(self.server_url.replace("http://", "ws://", 1) + path)
        call = SimulatedCall(
            call_sid=call_sid, stream_sid=_sid("MZ"), ws=ws, custom_parameters=custom or {}
        )
        self.streams[call_sid] = call
        await call.start(self.account_sid)
        if self.calls.get(call_sid, {}).get("status") == "completed":
            await call.hangup()  # hung up while the stream connected: Twilio ends it
        waiter = self._stream_waiters.pop(call_sid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(call)
        return call

    async def wait_stream(self, call_sid: str, timeout: float = 10.0) -> SimulatedCall:
        """The stream of an outbound call, once the simulated callee has answered."""
        if call_sid in self.streams:
            return self.streams[call_sid]
        loop = asyncio.get_running_loop()
        fut = self._stream_waiters.setdefault(call_sid, loop.create_future())
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    # --- the REST API ---------------------------------------------------------------

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.json_response(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status=status,
        )

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            auth = aiohttp.BasicAuth.decode(header)
        except ValueError:
            return False
        return (
            auth.login == self.account_sid
            and auth.password == self.auth_token
            and request.match_info.get("account") == self.account_sid
        )

    async def _record(
        self, request: web.Request, kind: str
    ) -> tuple[dict[str, Any], web.Response | None]:
        form = await request.post()
        entry: dict[str, Any] = {
            "kind": kind,
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "form": {k: form.getall(k) if len(form.getall(k)) > 1 else form[k] for k in form},
        }
        self.requests.append(entry)
        if not self._authorized(request):
            return entry, self._error(401, 20003, "Authenticate")
        if kind in self.fail_next:
            status, code, message = self.fail_next.pop(kind)
            return entry, self._error(status, code, message)
        return entry, None

    def requests_of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["kind"] == kind]

    def _call_json(self, call: dict[str, Any]) -> dict[str, Any]:
        uri = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call['sid']}.json"
        return {
            "sid": call["sid"],
            "account_sid": self.account_sid,
            "status": call["status"],
            "direction": "outbound-api",
            "from": call["from"],
            "to": call["to"],
            "answered_by": None,
            "duration": None,
            "start_time": None,
            "end_time": None,
            "price": None,
            "price_unit": "USD",
            "parent_call_sid": None,
            "api_version": "2010-04-01",
            "queue_time": "0",
            "date_created": "Tue, 31 Aug 2010 20:36:28 +0000",
            "date_updated": "Tue, 31 Aug 2010 20:36:28 +0000",
            "uri": uri,
            "subresource_uris": {"recordings": uri.replace(".json", "/Recordings.json")},
        }

    async def _create_call(self, request: web.Request) -> web.Response:
        entry, denied = await self._record(request, "create_call")
        if denied is not None:
            return denied
        form = entry["form"]
        if not form.get("To") or not form.get("From") or not form.get("Url"):
            return self._error(400, 21201, "To, From and Url are required")
        call = {"sid": _sid("CA"), "status": "queued", "from": form["From"], "to": form["To"]}
        call["form"] = form
        self.calls[call["sid"]] = call
        self._spawn(self._dial(call))
        return web.json_response(self._call_json(call), status=201)

    async def _dial(self, call: dict[str, Any]) -> None:
        """Play the callee answering: status callbacks, voice webhook, stream, async AMD."""
        form = call["form"]
        base = {
            "CallSid": call["sid"],
            "AccountSid": self.account_sid,
            "From": call["from"],
            "To": call["to"],
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
        }
        status_url = form.get("StatusCallback")
        try:
            if status_url:
                await self.post_webhook(status_url, {**base, "CallStatus": "ringing"})
            if call["status"] == "completed":  # hung up while ringing
                return
            call["status"] = "in-progress"
            if status_url:
                await self.post_webhook(status_url, {**base, "CallStatus": "in-progress"})
            await self._answer(form["Url"], {**base, "CallStatus": "in-progress"})
            if form.get("Record") == "true" and form.get("RecordingStatusCallback"):
                # Recorded from the answer on (RecordingSource OutboundAPI); reported
                # here rather than at the hang-up, as no real recording is kept.
                self._spawn(
                    self._recording_done(form["RecordingStatusCallback"], call, "OutboundAPI")
                )
            amd_url = form.get("AsyncAmdStatusCallback")
            if amd_url and self.answered_by is not None:
                await asyncio.sleep(self.amd_delay_s)
                if call["status"] == "completed":
                    return  # hung up before the verdict: there is none
                await self.post_webhook(
                    amd_url,
                    {
                        "CallSid": call["sid"],
                        "AccountSid": self.account_sid,
                        "AnsweredBy": self.answered_by,
                        "MachineDetectionDuration": str(int(self.amd_delay_s * 1000)),
                    },
                )
        except RuntimeError as exc:
            log.info("simulated call %s: %s", call["sid"], exc)
        except Exception:
            log.exception("simulated call %s failed", call["sid"])

    async def _fetch_call(self, request: web.Request) -> web.Response:
        _, denied = await self._record(request, "fetch_call")
        if denied is not None:
            return denied
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return self._error(404, 20404, "The requested resource was not found")
        return web.json_response(self._call_json(call))

    async def _update_call(self, request: web.Request) -> web.Response:
        entry, denied = await self._record(request, "update_call")
        if denied is not None:
            return denied
        sid = request.match_info["sid"]
        stream = self.streams.get(sid)
        call = self.calls.get(sid)
        if call is None and stream is None:
            return self._error(404, 20404, "The requested resource was not found")
        if call is None:
            call = {"sid": sid, "status": "in-progress", "from": "", "to": ""}
        form = entry["form"]
        if form.get("Status") in ("completed", "canceled") or form.get("Twiml"):
            # New TwiML or a hang-up ends the running <Connect><Stream>.
            call["status"] = "completed"
            if stream is not None:
                self._spawn(stream.hangup(), brief=True)
            status_url = call.get("form", {}).get("StatusCallback")
            if status_url:
                self._spawn(
                    self.post_webhook(
                        status_url,
                        {
                            "CallSid": sid,
                            "AccountSid": self.account_sid,
                            "From": call["from"],
                            "To": call["to"],
                            "CallStatus": "completed",
                            "CallDuration": "1",
                        },
                    ),
                    brief=True,
                )
        return web.json_response(self._call_json(call))

    async def _create_recording(self, request: web.Request) -> web.Response:
        entry, denied = await self._record(request, "create_recording")
        if denied is not None:
            return denied
        sid = request.match_info["sid"]
        callback = entry["form"].get("RecordingStatusCallback")
        rec_sid = _sid("RE")
        if callback:
            call = self.calls.get(sid, {"sid": sid})
            self._spawn(self._recording_done(callback, call, "StartCallRecordingAPI", rec_sid))
        body: dict[str, Any] = {"sid": rec_sid, "call_sid": sid, "account_sid": self.account_sid}
        body |= {"status": "in-progress", "source": "StartCallRecordingAPI", "channels": 1}
        return web.json_response(body, status=201)

    async def _recording_done(
        self, callback: str, call: dict[str, Any], source: str, rec_sid: str = ""
    ) -> None:
        rec_sid = rec_sid or _sid("RE")
        await self.post_webhook(
            callback,
            {
                "AccountSid": self.account_sid,
                "CallSid": call["sid"],
                "RecordingSid": rec_sid,
                "RecordingUrl": f"{self.api_url}/Recordings/{rec_sid}",
                "RecordingStatus": "completed",
                "RecordingDuration": "3",
                "RecordingChannels": "1",
                "RecordingSource": source,
            },
        )

    async def _list_numbers(self, request: web.Request) -> web.Response:
        _, denied = await self._record(request, "list_numbers")
        if denied is not None:
            return denied
        wanted = request.query.get("PhoneNumber")
        found = [n for n in self.numbers.values() if wanted in (None, n["phone_number"])]
        return web.json_response(
            {
                "incoming_phone_numbers": found,
                "page": 0,
                "page_size": 50,
                "start": 0,
                "end": max(len(found) - 1, 0),
                "first_page_uri": request.path_qs,
                "next_page_uri": None,
                "previous_page_uri": None,
                "uri": request.path_qs,
            }
        )

    async def _update_number(self, request: web.Request) -> web.Response:
        entry, denied = await self._record(request, "update_number")
        if denied is not None:
            return denied
        for number in self.numbers.values():
            if number["sid"] == request.match_info["sid"]:
                number["voice_url"] = entry["form"].get("VoiceUrl")
                number["voice_method"] = entry["form"].get("VoiceMethod", "POST")
                return web.json_response(number)
        return self._error(404, 20404, "The requested resource was not found")


def rejected_by(twiml: str) -> str | None:
    """The reason of a leading ``<Reject>`` (Twilio then never answers), else None."""
    root = ET.fromstring(twiml)
    if root.tag != "Response":
        raise ValueError(f"TwiML must have a <Response> root, not <{root.tag}>")
    first = next(iter(root), None)
    if first is None or first.tag != "Reject":
        return None
    return first.get("reason", "rejected")


def parse_stream_twiml(twiml: str) -> tuple[str, dict[str, str]]:
    """The ``<Connect><Stream url>`` and its ``<Parameter>``s, as Twilio reads them."""
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise ValueError(f"no <Connect><Stream url> in TwiML: {twiml!r}")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return str(stream.get("url")), params
