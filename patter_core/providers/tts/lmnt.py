"""LMNT TTS over its speech-session WebSocket (``/v1/ai/speech/stream``), one socket per utterance.

LMNT takes the key in the first JSON message (``X-API-Key``) with voice and
format (protocol version 2, as lmnt-python sends it); text follows, then the
``flush`` and ``eof`` commands. Audio arrives as binary frames, acks and errors
(``{"error": …}``) as JSON text frames, and the server closes once everything
is sent. ``audio_format="ulaw"`` at 8 kHz suits a Twilio line with no
conversion; LMNT puts a WAV header in front of it, which is cut off here.
Barge-in sends ``reset`` and drops the socket.
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

_ENCODINGS = {"pcm_s16le": Encoding.PCM16, "ulaw": Encoding.MULAW}
_RATES = (8000, 16000, 24000)


class LMNTTTS:
    name = "lmnt"

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
        self._key = resolve_key(api_key, "LMNT_API_KEY", self.name)
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
                "voice": self.voice,
                "protocol_version": 2,
                "format": self.audio_format,
                "sample_rate": str(self.sample_rate),
                "language": self.language,
            }
            if self.model:
                setup["model"] = self.model
            flush = {"command": "flush", "nonce": 1}
            for message in (setup, {"text": text}, flush, {"command": "eof"}):
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
                    if "error" in event:
                        raise ProviderError(
                            self.name, ws_stream.server_text(event["error"], self._key)
                        )
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    if ws.close_code == 1000:  # normal close after eof: all audio sent
                        finished = True
                        return
                    raise ws_stream.dropped(self.name, ws)
                else:
                    raise ws_stream.dropped(self.name, ws)
        finally:
            if not finished and not ws.closed:  # barge-in: drop what LMNT has queued
                with contextlib.suppress(ProviderError):
                    await ws_stream.send_json(self.name, ws, {"command": "reset", "nonce": 2}, 1.0)
            await ws_stream.close_quietly(ws)

    async def close(self) -> None:
        """Each utterance owns its socket; nothing is left open between them."""


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
