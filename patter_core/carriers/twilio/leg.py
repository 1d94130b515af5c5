"""Twilio Media Streams: wire JSON ⇄ typed leg events, with paced playback.

Inbound messages are parsed defensively: a malformed, unknown, oversized or
binary frame is counted and skipped, never fatal to the call. Pacing and the
receive loop are shared with other carriers (``patter_core.carriers.media``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator

from aiohttp import web

from patter_core.audio.formats import MULAW_8K, AudioFormat
from patter_core.carriers.base import (
    LegAudio,
    LegDtmf,
    LegEvent,
    LegMark,
    LegStarted,
    LegStopped,
)
from patter_core.carriers.media import (
    DEFAULT_LEAD_MS,
    DTMF_DIGITS,
    MAX_MEDIA_MESSAGE,
    RECEIVE_TIMEOUT_S,
    PacedOutput,
    receive_events,
)

log = logging.getLogger(__name__)


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
        self._receive_timeout = receive_timeout
        self.stream_sid = ""
        self.carrier_call_sid = ""
        self.stats: Counter[str] = Counter()
        self._output = PacedOutput(
            MULAW_8K,
            self._send_media,
            self._send_mark,
            lead_ms=lead_ms,
            name=f"twilio-send-{call_id}",
        )
        self._closed = False

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def wire_format(self) -> AudioFormat:
        return MULAW_8K

    # --- inbound -----------------------------------------------------------

    def events(self) -> AsyncIterator[LegEvent]:
        """Inbound events, ending with exactly one ``LegStopped``."""
        return receive_events(
            self._ws,
            self._parse,
            stats=self.stats,
            closed_by_us=lambda: self._closed,
            timeout=self._receive_timeout,
        )

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
                if len(digit) != 1 or digit not in DTMF_DIGITS:
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

    async def send_audio(self, payload: bytes) -> None:
        self._output.push_audio(payload)

    async def send_mark(self, name: str) -> None:
        self._output.push_mark(name)

    async def clear(self) -> None:
        self._output.drop_queued()
        await self._send_json({"event": "clear", "streamSid": self.stream_sid})

    async def _send_media(self, payload: bytes) -> None:
        await self._send_json(
            {
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {"payload": base64.b64encode(payload).decode("ascii")},
            }
        )

    async def _send_mark(self, name: str) -> None:
        await self._send_json(
            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        )

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
        await self._output.close()
        if not self._ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2)
