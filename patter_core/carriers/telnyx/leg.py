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

import base64
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from patter_core.audio.formats import L16_16K, MULAW_8K, AudioFormat
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
        return parse_message(
            text,
            {
                "media": lambda msg: self._media(msg["media"]),
                "start": self._start,
                "error": self._error,
            },
            stats=self.stats,
            call_id=self._call_id,
        )

    def _error(self, msg: dict[str, Any]) -> None:
        body = msg.get("payload") or {}
        self.stats["carrier_error"] += 1
        log.warning(
            "call %s: telnyx stream error %s: %s",
            self._call_id,
            body.get("code"),
            body.get("title") or body.get("detail") or "no detail",
        )

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

    def _start(self, msg: dict[str, Any]) -> LegStarted:
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
        await self._output.push_audio(payload)

    async def send_mark(self, name: str) -> None:
        await self._output.push_mark(name)

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
        await send_json(self._ws, message, self.stats)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await close_leg(self._ws, self._output)
