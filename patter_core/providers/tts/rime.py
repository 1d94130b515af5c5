"""Rime TTS over its JSON WebSocket (``/ws3``), one socket per utterance.

Synthesis options ride in the query string and the key in an ``Authorization:
Bearer`` header. The socket is opened with ``segment=never``, so Rime speaks
only what it is told to flush: the utterance is sent as ``{"text", "contextId"}``,
then ``{"operation": "flush"}`` and ``{"operation": "eos"}``. Audio comes back as
base64 ``chunk`` events until the one ``done`` of that synthesis (or the
server's normal close after ``eos``). Under Rime's default segmentation
(``bySentence``) every sentence would be a synthesis with its own ``done``, and
a reply of two sentences would stop after the first. Barge-in sends ``clear``
and drops the socket, so no more audio arrives. ``audio_format="mulaw"`` at
8 kHz suits a Twilio line with no conversion; ``pcm`` is PCM16 at
``sample_rate`` (Rime may split a sample across chunks; the transcoder joins it).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator
from urllib.parse import urlencode

import aiohttp

from patter_core.audio.formats import AudioFormat, Encoding
from patter_core.providers.base import ProviderError
from patter_core.providers.keys import resolve_key
from patter_core.providers.tts import ws_stream

DEFAULT_URL = "wss://users-ws.rime.ai"
# Coda is Rime's flagship and the documented replacement for Arcana; "lyra" is
# livekit's default Coda speaker.
DEFAULT_MODEL = "coda"
DEFAULT_VOICE = "lyra"

_ENCODINGS = {"pcm": Encoding.PCM16, "mulaw": Encoding.MULAW}


class RimeTTS:
    name = "rime"
    env_var = "RIME_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        voice: str = DEFAULT_VOICE,
        model: str = DEFAULT_MODEL,
        audio_format: str = "pcm",
        sample_rate: int = 16000,
        language: str | None = None,
        options: dict[str, str | int | float] | None = None,
        base_url: str = DEFAULT_URL,
        connect_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        if audio_format not in _ENCODINGS:
            raise ValueError(f"audio_format must be one of {sorted(_ENCODINGS)}")
        if audio_format == "mulaw" and sample_rate != 8000:
            raise ValueError("audio_format='mulaw' needs sample_rate=8000")
        if options and "segment" in options:
            raise ValueError("segment is fixed to 'never': one flush, one synthesis, one done")
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.voice = voice
        self.model = model
        self.audio_format = audio_format
        self.sample_rate = sample_rate
        self.language = language
        self.options = dict(options or {})
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.characters = 0

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat(_ENCODINGS[self.audio_format], self.sample_rate)

    def _url(self) -> str:
        query: dict[str, str | int | float] = {
            "speaker": self.voice,
            "modelId": self.model,
            "audioFormat": self.audio_format,
            "samplingRate": self.sample_rate,
            "segment": "never",
        }
        if self.language:
            query["lang"] = self.language
        query.update(self.options)
        return f"{self.base_url}/ws3?{urlencode(query)}"

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        ws = await ws_stream.connect(
            self.name,
            self._url(),
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=self.connect_timeout,
        )
        context_id = uuid.uuid4().hex
        finished = False
        try:
            await ws_stream.send_json(
                self.name, ws, {"text": text, "contextId": context_id}, self.read_timeout
            )
            for operation in ("flush", "eos"):
                await ws_stream.send_json(
                    self.name, ws, {"operation": operation}, self.read_timeout
                )
            self.characters += len(text)
            while True:
                msg = await ws_stream.receive(self.name, ws, timeout=self.read_timeout)
                if msg.type is aiohttp.WSMsgType.TEXT:
                    event = ws_stream.parse_object(msg.data)
                    kind = event.get("type")
                    if kind == "chunk":
                        audio = ws_stream.b64_audio(self.name, event.get("data"))
                        if audio:
                            yield audio
                    elif kind == "done":
                        finished = True
                        return
                    elif kind == "error":
                        finished = True
                        detail = ws_stream.server_text(event.get("message") or "error", self._key)
                        raise ProviderError(self.name, detail)
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    if ws.close_code == 1000:  # normal close after eos: all audio sent
                        finished = True
                        return
                    raise ws_stream.dropped(self.name, ws)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    raise ws_stream.dropped(self.name, ws)
        finally:
            if not finished and not ws.closed:
                with contextlib.suppress(ProviderError):
                    await ws_stream.send_json(self.name, ws, {"operation": "clear"}, 1.0)
            await ws_stream.close_quietly(ws)

    async def close(self) -> None:
        """Each utterance owns its socket; nothing is left open between them."""
