"""Twilio Media Streams: wire JSON ⇄ typed leg events, with paced playback.

Inbound messages are parsed defensively: a malformed, unknown, oversized or
binary frame is counted and skipped, never fatal to the call. Pacing and the
receive loop are shared with other carriers (``patter_core.carriers.media``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from patter_core.audio.formats import MULAW_8K, AudioFormat
from patter_core.carriers.base import (
    LegAudio,
    LegEvent,
    LegStarted,
)
from patter_core.carriers.media import (
    DEFAULT_LEAD_MS,
    RECEIVE_TIMEOUT_S,
    PacedOutput,
    close_leg,
    parse_message,
    receive_events,
    send_json,
    send_text,
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
        self._sid_cache = ("", '""')
        self.stats: Counter[str] = Counter()
        self._output = PacedOutput(
            MULAW_8K,
            self._send_media,
            self._send_mark,
            lead_ms=lead_ms,
            name=f"twilio-send-{call_id}",
        )
        self._closed = False
        self._handlers = {"media": self._media, "start": self._start}

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
        return parse_message(
            text,
            self._handlers,
            stats=self.stats,
            call_id=self._call_id,
        )

    def _media(self, msg: dict[str, Any]) -> LegAudio | None:
        media = msg["media"]
        if media.get("track", "inbound") != "inbound":
            return None
        payload = base64.b64decode(media["payload"], validate=True)
        self.stats["media"] += 1
        return LegAudio(payload, float(media.get("timestamp", 0) or 0))

    def _start(self, msg: dict[str, Any]) -> LegStarted:
        start = msg["start"]
        self.stream_sid = str(msg.get("streamSid") or start.get("streamSid") or "")
        self.carrier_call_sid = str(start.get("callSid", ""))
        custom = start.get("customParameters") or {}
        return LegStarted(
            self.stream_sid,
            self.carrier_call_sid,
            {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {},
        )

    # --- outbound ----------------------------------------------------------

    async def send_audio(self, payload: bytes) -> None:
        await self._output.push_audio(payload)

    async def send_mark(self, name: str) -> None:
        await self._output.push_mark(name)

    async def clear(self) -> None:
        self._output.drop_queued()
        await self._send_json({"event": "clear", "streamSid": self.stream_sid})

    def _sid_json(self) -> str:
        """``stream_sid`` as a JSON string, encoded once per stream (the hot path reuses it)."""
        if self._sid_cache[0] != self.stream_sid:
            self._sid_cache = (self.stream_sid, orjson.dumps(self.stream_sid).decode())
        return self._sid_cache[1]

    async def _send_media(self, payload: bytes) -> None:
        # The same compact JSON as serialising the dict, built without one per frame.
        b64 = binascii.b2a_base64(payload, newline=False).decode("ascii")
        text = '{"event":"media","streamSid":' + self._sid_json()
        await send_text(self._ws, text + ',"media":{"payload":"' + b64 + '"}}', self.stats)

    async def _send_mark(self, name: str) -> None:
        text = '{"event":"mark","streamSid":' + self._sid_json()
        name_json = orjson.dumps(name).decode()
        await send_text(self._ws, text + ',"mark":{"name":' + name_json + "}}", self.stats)

    async def _send_json(self, message: dict[str, object]) -> None:
        await send_json(self._ws, message, self.stats)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_leg(self._ws, self._output)
