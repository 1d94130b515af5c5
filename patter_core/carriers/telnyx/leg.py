"""Telnyx media streaming: wire JSON ⇄ typed leg events, with paced playback.

Same contract as the Twilio leg (shared pacing and receive loop in
``patter_core.carriers.media``); only the message shapes (protocols.md §6) and
the codec differ. The codec is chosen when the call is answered, so the leg
knows its wire format before the stream's ``start`` arrives.

L16 byte order: Telnyx documents L16 as "16-bit linear PCM" without naming an
order. We send and expect network (big-endian) order, as RFC 3551 defines
L16 for RTP payloads and as pipecat's Telnyx serializer does in its L16 tests;
a ``start`` that reports another encoding than the one we asked for is logged.
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

from patter_core.audio.formats import L16_16K, MULAW_8K, AudioFormat
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

# Telnyx codec name → our wire format, and the sampling rate we ask for.
CODECS: dict[str, AudioFormat] = {"PCMU": MULAW_8K, "L16": L16_16K}
DEFAULT_CODEC = "PCMU"


def choose_codec(offered_codecs: object) -> str:
    """L16 (16 kHz, no transcoding for the session) when the call offers it, else PCMU."""
    if isinstance(offered_codecs, str):
        offered = {c.strip().upper() for c in offered_codecs.split(",")}
        if "L16" in offered:
            return "L16"
    return DEFAULT_CODEC


class TelnyxLeg:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        call_id: str,
        *,
        codec: str = DEFAULT_CODEC,
        lead_ms: int = DEFAULT_LEAD_MS,
        receive_timeout: float = RECEIVE_TIMEOUT_S,
    ) -> None:
        self._ws = ws
        self._call_id = call_id
        self.codec = codec if codec in CODECS else DEFAULT_CODEC
        self._format = CODECS[self.codec]
        self._bytes_per_ms = self._format.bytes_for_ms(1000) / 1000
        self._receive_timeout = receive_timeout
        self.stream_id = ""
        self.call_control_id = ""
        self.stats: Counter[str] = Counter()
        self._received_ms = 0.0
        self._output = PacedOutput(
            self._format,
            self._send_media,
            self._send_mark,
            lead_ms=lead_ms,
            name=f"telnyx-send-{call_id}",
        )
        self._closed = False

    @property
    def call_id(self) -> str:
        return self._call_id

    @property
    def wire_format(self) -> AudioFormat:
        return self._format

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
                return self._media(msg["media"])
            if kind == "start":
                return self._start(msg)
            if kind == "mark":
                return LegMark(str(msg["mark"]["name"]))
            if kind == "dtmf":
                digit = str(msg["dtmf"]["digit"])
                if len(digit) != 1 or digit not in DTMF_DIGITS:
                    raise ValueError(digit)
                return LegDtmf(digit)
            if kind == "stop":
                return LegStopped("hangup", "carrier sent stop")
            if kind == "error":
                body = msg.get("payload") or {}
                self.stats["carrier_error"] += 1
                log.warning(
                    "call %s: telnyx stream error %s: %s",
                    self._call_id,
                    body.get("code"),
                    body.get("title") or body.get("detail") or "no detail",
                )
                return None
            if kind == "connected":
                return None
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error):
            self.stats["malformed"] += 1
            log.debug("call %s: malformed %s message", self._call_id, kind)
            return None
        self.stats["unknown"] += 1
        return None

    def _media(self, media: dict[str, object]) -> LegAudio | None:
        if media.get("track", "inbound") != "inbound":
            return None
        payload = base64.b64decode(str(media["payload"]), validate=True)
        if len(payload) % self._format.bytes_per_sample:
            raise ValueError("partial sample")
        self.stats["media"] += 1
        at = self._received_ms
        self._received_ms += len(payload) / self._bytes_per_ms
        return LegAudio(payload, at)

    def _start(self, msg: dict[str, object]) -> LegStarted:
        start = msg["start"]
        if not isinstance(start, dict):
            raise TypeError("start")
        self.stream_id = str(msg.get("stream_id") or "")
        self.call_control_id = str(start.get("call_control_id", ""))
        fmt = start.get("media_format")
        encoding = str(fmt.get("encoding", "")).upper() if isinstance(fmt, dict) else ""
        if encoding and encoding != self.codec:
            self.stats["format_mismatch"] += 1
            log.warning(
                "call %s: telnyx streams %s, but %s was requested",
                self._call_id,
                encoding,
                self.codec,
            )
        return LegStarted(self.stream_id, self.call_control_id)

    # --- outbound ----------------------------------------------------------

    async def send_audio(self, payload: bytes) -> None:
        self._output.push_audio(payload)

    async def send_mark(self, name: str) -> None:
        self._output.push_mark(name)

    async def clear(self) -> None:
        self._output.drop_queued()
        await self._send_json({"event": "clear"})

    async def _send_media(self, payload: bytes) -> None:
        await self._send_json(
            {"event": "media", "media": {"payload": base64.b64encode(payload).decode("ascii")}}
        )

    async def _send_mark(self, name: str) -> None:
        await self._send_json({"event": "mark", "mark": {"name": name}})

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
