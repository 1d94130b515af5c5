"""LMNT TTS over its speech-session WebSocket (``/v1/ai/speech/stream``), one socket per utterance.

Speaks LMNT API 1.1 as lmnt-python 2.6 does: the first JSON message carries the
key (``X-API-Key``), ``lmnt-version``, voice and format; the server answers
``ready``. Every later message has a ``type``: ``text``, then ``flush`` with a
nonce, then ``finish``. Audio arrives as binary frames; ``flush_complete`` with
the same nonce says the flushed text is all spoken, and errors come as
``{"type": "error", "error": {"type", "message"}}``. ``audio_format="ulaw"`` at
8 kHz suits a Twilio line with no conversion; LMNT puts a WAV header in front
of it, which is cut off here. Barge-in sends ``reset`` and drops the socket.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from patter_core.audio.formats import AudioFormat, Encoding
from patter_core.providers.base import ProviderError
from patter_core.providers.keys import resolve_key
from patter_core.providers.tts import ws_stream

DEFAULT_URL = "wss://api.lmnt.com"
API_VERSION = "1.1"  # lmnt-python's LMNT_API_VERSION

# LMNT's error ``type`` slugs as the HTTP status they stand for.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "payment_required_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "internal_server_error": 500,
}
_FLUSH_NONCE, _RESET_NONCE = 1, 2

_ENCODINGS = {"pcm_s16le": Encoding.PCM16, "ulaw": Encoding.MULAW}
_RATES = (8000, 16000, 24000)


class LMNTTTS:
    name = "lmnt"
    env_var = "LMNT_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        voice: str = "leah",
        model: str | None = None,
        audio_format: str = "pcm_s16le",
        sample_rate: int = 16000,
        language: str = "en",
        base_url: str = DEFAULT_URL,
        connect_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        if audio_format not in _ENCODINGS:
            raise ValueError(f"audio_format must be one of {sorted(_ENCODINGS)}")
        if sample_rate not in _RATES:
            raise ValueError(f"sample_rate must be one of {_RATES}")
        if audio_format == "ulaw" and sample_rate != 8000:
            raise ValueError("audio_format='ulaw' needs sample_rate=8000")
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.voice = voice
        self.model = model
        self.audio_format = audio_format
        self.sample_rate = sample_rate
        self.language = language
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.characters = 0

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat(_ENCODINGS[self.audio_format], self.sample_rate)

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        ws = await ws_stream.connect(
            self.name,
            f"{self.base_url}/v1/ai/speech/stream",
            headers={},
            timeout=self.connect_timeout,
        )
        finished = False
        try:
            setup: dict[str, Any] = {
                "X-API-Key": self._key,
                "lmnt-version": API_VERSION,
                "voice": self.voice,
                "format": self.audio_format,
                "sample_rate": self.sample_rate,
                "language": self.language,
            }
            if self.model:
                setup["model"] = self.model
            messages = (
                setup,
                {"type": "text", "text": text},
                {"type": "flush", "nonce": _FLUSH_NONCE},
                {"type": "finish"},
            )
            for message in messages:
                await ws_stream.send_json(self.name, ws, message, self.read_timeout)
            self.characters += len(text)
            header = _WavHeader() if self.audio_format == "ulaw" else None
            while True:
                msg = await ws_stream.receive(self.name, ws, timeout=self.read_timeout)
                if msg.type is aiohttp.WSMsgType.BINARY:
                    audio = header.strip(self.name, msg.data) if header else msg.data
                    if audio:
                        yield audio
                elif msg.type is aiohttp.WSMsgType.TEXT:
                    event = ws_stream.parse_object(msg.data)
                    if event.get("type") == "error" or "error" in event:
                        raise _error(self.name, event, self._key)
                    if event.get("type") == "flush_complete" and (
                        event.get("nonce") == _FLUSH_NONCE
                    ):
                        finished = True  # everything flushed has been sent
                        return
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    if ws.close_code == 1000:  # normal close after finish: all audio sent
                        finished = True
                        return
                    raise ws_stream.dropped(self.name, ws)
                else:
                    raise ws_stream.dropped(self.name, ws)
        finally:
            if not finished and not ws.closed:  # barge-in: drop what LMNT has queued
                with contextlib.suppress(ProviderError):
                    reset = {"type": "reset", "nonce": _RESET_NONCE}
                    await ws_stream.send_json(self.name, ws, reset, 1.0)
            await ws_stream.close_quietly(ws)

    async def close(self) -> None:
        """Each utterance owns its socket; nothing is left open between them."""


def _error(provider: str, event: dict[str, Any], key: str) -> ProviderError:
    """``{"type": "error", "error": {"type", "message"}}`` (API 1.1), or an older
    server's ``{"error": "<text>"}``."""
    body = event.get("error")
    if isinstance(body, dict):
        slug = str(body.get("type") or "")
        status = _ERROR_STATUS.get(slug)
        detail = ws_stream.server_text(body.get("message") or slug or "error", key)
    else:
        status = None
        detail = ws_stream.server_text(body or "error", key)
    return ProviderError(
        provider,
        detail,
        status=status,
        retryable=status is not None and (status == 429 or status >= 500),
    )


class _WavHeader:
    """Cuts the RIFF/WAVE header LMNT puts before ``ulaw`` audio, across frames:
    everything up to and including the ``data`` chunk's header. A stream that
    does not start with ``RIFF`` passes through untouched."""

    _LIMIT = 4096  # a header longer than this is not one

    def __init__(self) -> None:
        self._buf = b""
        self._done = False

    def strip(self, provider: str, data: bytes) -> bytes:
        if self._done:
            return data
        buf = self._buf + data
        if len(buf) < 12:
            if b"RIFF".startswith(buf[:4]):
                self._buf = buf
                return b""
            return self._finish(buf)
        if buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
            return self._finish(buf)
        pos = 12
        while len(buf) >= pos + 8:
            size = int.from_bytes(buf[pos + 4 : pos + 8], "little")
            if buf[pos : pos + 4] == b"data":
                return self._finish(buf[pos + 8 :])
            pos += 8 + size + (size & 1)
            if pos > self._LIMIT:
                raise ProviderError(provider, "malformed WAV header in the audio stream")
        self._buf = buf
        return b""

    def _finish(self, audio: bytes) -> bytes:
        self._done, self._buf = True, b""
        return audio
