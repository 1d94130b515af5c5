"""Soniox real-time STT (``/transcribe-websocket``).

The key travels in the first text frame (the configuration), not in a header.
Final tokens are sent once and non-final tokens are re-sent with every
response, so the stream keeps the finals of the current turn and reports
finals + non-finals as the interim text. The ``<end>`` token (endpoint
detected) ends the turn; ``<fin>`` answers a ``finalize`` request.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.keys import resolve_key
from patter_core.providers.stt.ws import Parsed, WsOptions, WsSTTStream

log = logging.getLogger(__name__)

DEFAULT_URL = "wss://stt-rt.soniox.com/transcribe-websocket"
_RETRYABLE = {408, 429, 500, 503}
_RECONNECT = 503  # "cannot continue request": the service asks for a new session


class SonioxSTT:
    name = "soniox"
    env_var = "SONIOX_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "stt-rt-v5",
        language_hints: list[str] | None = None,
        base_url: str = DEFAULT_URL,
        options: WsOptions | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model
        self.language_hints = language_hints or ["en"]
        self.base_url = base_url
        self.options = options or WsOptions()

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    async def open(self, call_id: str) -> WsSTTStream:
        stream = WsSTTStream(_Dialect(self), self.input_format, call_id, self.options)
        await stream.start()
        return stream


class _Dialect:
    provider = "soniox"
    min_chunk_bytes = 0

    def __init__(self, cfg: SonioxSTT) -> None:
        self._cfg = cfg
        self._finals = ""  # final text of the turn in progress
        self._last_interim = ""

    def url(self) -> str:
        return self._cfg.base_url

    def headers(self) -> dict[str, str]:
        return {}

    def opening(self) -> list[str]:
        c = self._cfg
        config = {
            "api_key": c._key,
            "model": c.model,
            "audio_format": "pcm_s16le",
            "sample_rate": c.input_format.sample_rate,
            "num_channels": 1,
            "language_hints": c.language_hints,
            "enable_endpoint_detection": True,
        }
        return [json.dumps(config)]

    def keepalive(self) -> str:
        return '{"type":"keepalive"}'

    def finalize(self) -> str:
        return '{"type":"finalize"}'

    def closing(self, chunks_sent: int) -> str:
        return ""  # an empty text frame ends the audio

    def close_error(self, code: int | None) -> ProviderError | None:
        return None

    def _turn(self, end_of_turn: bool) -> list[Transcription]:
        text, self._finals, self._last_interim = self._finals.strip(), "", ""
        if not text:
            return []
        return [Transcription(text, final=True, end_of_turn=end_of_turn)]

    def parse(self, message: dict[str, Any]) -> Parsed:
        if message.get("error_code") is not None or message.get("error_message"):
            detail = message.get("error_message") or "error"
            status = message.get("error_code")
            code = status if isinstance(status, int) else None
            if code == _RECONNECT:
                log.warning("soniox: %s; the close that follows reconnects", detail)
                return Parsed()
            if code == 401:
                raise ProviderError(self.provider, "authentication failed", status=code)
            retry = code in _RETRYABLE
            raise ProviderError(self.provider, str(detail)[:200], status=code, retryable=retry)
        out: list[Transcription] = []
        pending = ""
        for token in message.get("tokens") or []:
            if not isinstance(token, dict):
                continue
            text = str(token.get("text", ""))
            if text == "<end>":
                out.extend(self._turn(end_of_turn=True))
            elif text == "<fin>":
                out.extend(self._turn(end_of_turn=False))
            elif token.get("is_final"):
                self._finals += text
            else:
                pending += text
        interim = (self._finals + pending).strip()
        if interim and interim != self._last_interim:
            self._last_interim = interim
            out.append(Transcription(interim, final=False))
        if message.get("finished"):
            out.extend(self._turn(end_of_turn=True))
            return Parsed(out, done=True)
        return Parsed(out)
