"""Twilio Media Streams: wire JSON ⇄ typed leg events, with paced playback.

Inbound messages are parsed defensively: a malformed, unknown, oversized or
binary frame is counted and skipped, never fatal to the call. Outbound audio
is cut into 20 ms ``media`` messages and sent no more than ``lead_ms`` ahead
of real time, so ``clear`` on barge-in has little to flush and marks come
back close to when the caller actually heard the audio.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from patter_core.audio.formats import MULAW_8K, AudioFormat
from patter_core.audio.transcode import FrameSlicer
from patter_core.carriers.base import (
    LegAudio,
    LegDtmf,
    LegEvent,
    LegMark,
    LegStarted,
    LegStopped,
)

log = logging.getLogger(__name__)

MAX_MEDIA_MESSAGE = 64 * 1024
FRAME_MS = 20
DEFAULT_LEAD_MS = 200
RECEIVE_TIMEOUT_S = 30.0  # Twilio sends 50 messages a second; silence this long is a dead socket


@dataclass(frozen=True, slots=True)
class _Audio:
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


class TwilioLeg:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        call_id: str,
        *,
        lead_ms: int = DEFAULT_LEAD_MS,
        receive_timeout: float = RECEIVE_TIMEOUT_S,
    ) -> None:
        self._ws = ws
        self._call_id = call_id
        self._lead_s = lead_ms / 1000
        self._receive_timeout = receive_timeout
        self.stream_sid = ""
        self.carrier_call_sid = ""
        self.stats: Counter[str] = Counter()
        self._out: deque[_Audio | _Mark] = deque()
        self._out_ready = asyncio.Event()
        self._slicer = FrameSlicer(MULAW_8K, FRAME_MS)
        self._sender: asyncio.Task[None] | None = None
        self._play_until = 0.0  # monotonic time the carrier finishes what we sent
        self._closed = False

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def wire_format(self) -> AudioFormat:
        return MULAW_8K

    # --- inbound -----------------------------------------------------------

    async def events(self) -> AsyncIterator[LegEvent]:
        """Inbound events, ending with exactly one ``LegStopped``."""
        while True:
            try:
                msg = await asyncio.wait_for(self._ws.receive(), self._receive_timeout)
            except TimeoutError:
                yield LegStopped("dropped", f"nothing received for {self._receive_timeout:.0f} s")
                return
            if msg.type == WSMsgType.TEXT:
                event = self._parse(msg.data)
                if event is not None:
                    yield event
                    if isinstance(event, LegStopped):
                        return
            elif msg.type == WSMsgType.BINARY:
                self.stats["binary"] += 1
            elif msg.type == WSMsgType.ERROR:
                yield LegStopped("dropped", f"socket error: {self._ws.exception()!r}")
                return
            else:  # CLOSE, CLOSING, CLOSED
                if self._closed:
                    yield LegStopped("closed", "closed by us")
                else:
                    yield LegStopped("dropped", "socket closed without a stop message")
                return

    def _parse(self, text: str) -> LegEvent | None:
        if len(text) > MAX_MEDIA_MESSAGE:
            self.stats["oversized"] += 1
            return None
        try:
            msg = json.loads(text)
            kind = msg["event"]
        except (ValueError, KeyError, TypeError):
            self.stats["malformed"] += 1
            log.debug("call %s: malformed media message", self._call_id)
            return None
        try:
            if kind == "media":
                media = msg["media"]
                if media.get("track", "inbound") != "inbound":
                    return None
                payload = base64.b64decode(media["payload"], validate=True)
                self.stats["media"] += 1
                return LegAudio(payload, float(media.get("timestamp", 0) or 0))
            if kind == "start":
                start = msg["start"]
                self.stream_sid = str(msg.get("streamSid") or start.get("streamSid") or "")
                self.carrier_call_sid = str(start.get("callSid", ""))
                custom = start.get("customParameters") or {}
                return LegStarted(
                    self.stream_sid,
                    self.carrier_call_sid,
                    {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {},
                )
            if kind == "mark":
                return LegMark(str(msg["mark"]["name"]))
            if kind == "dtmf":
                digit = str(msg["dtmf"]["digit"])
                if len(digit) != 1 or digit not in "0123456789*#ABCDabcd":
                    raise ValueError(digit)
                return LegDtmf(digit)
            if kind == "stop":
                return LegStopped("hangup", "carrier sent stop")
            if kind == "connected":
                return None
        except (KeyError, TypeError, ValueError, binascii.Error):
            self.stats["malformed"] += 1
            log.debug("call %s: malformed %s message", self._call_id, kind)
            return None
        self.stats["unknown"] += 1
        return None

    # --- outbound ----------------------------------------------------------

    def _ensure_sender(self) -> None:
        if self._sender is None and not self._closed:
            self._sender = asyncio.create_task(
                self._send_loop(), name=f"twilio-send-{self._call_id}"
            )

    async def send_audio(self, payload: bytes) -> None:
        if self._closed or not payload:
            return
        for frame in self._slicer.push(payload):
            self._out.append(_Audio(frame))
        self._out_ready.set()
        self._ensure_sender()

    async def send_mark(self, name: str) -> None:
        if self._closed:
            return
        rest = self._slicer.remainder()
        if rest:  # a mark closes a chunk: send its tail rather than hold it back
            self._out.append(_Audio(rest))
        self._out.append(_Mark(name))
        self._out_ready.set()
        self._ensure_sender()

    async def clear(self) -> None:
        self._out.clear()
        self._slicer.remainder()
        self._play_until = 0.0
        await self._send_json({"event": "clear", "streamSid": self.stream_sid})

    async def _send_loop(self) -> None:
        while not self._closed:
            if not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
                continue
            now = time.monotonic()
            ahead = self._play_until - now
            if ahead > self._lead_s:
                await asyncio.sleep(ahead - self._lead_s)
                continue
            item = self._out.popleft()
            if isinstance(item, _Mark):
                await self._send_json(
                    {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": item.name}}
                )
                continue
            await self._send_json(
                {
                    "event": "media",
                    "streamSid": self.stream_sid,
                    "media": {"payload": base64.b64encode(item.payload).decode("ascii")},
                }
            )
            self._play_until = max(self._play_until, now) + len(item.payload) / 8000

    async def _send_json(self, message: dict[str, object]) -> None:
        if self._ws.closed:
            return
        try:
            await self._ws.send_str(json.dumps(message, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            self.stats["send_failed"] += 1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._out_ready.set()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        if not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
