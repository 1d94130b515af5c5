"""Cartesia streaming STT (``/stt/websocket``).

Audio goes in binary frames; ``finalize`` (answered by ``flush_done``) and
``done`` (answered by ``done``) are plain text frames, as in API version
2025-04-16; newer versions name the close command ``close``. This endpoint
reports no end of turn of its own (that is ``/stt/turns/websocket``), so a
result marked ``is_final`` (after a pause or a ``finalize``) is treated as the
end of turn. Each transcript's ``text`` is a delta since the last final one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.keys import resolve_key
from patter_core.providers.stt.ws import Parsed, WsOptions, WsSTTStream

DEFAULT_URL = "wss://api.cartesia.ai/stt/websocket"
API_VERSION = "2025-04-16"


class CartesiaSTT:
    name = "cartesia"
    env_var = "CARTESIA_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "ink-whisper",
        language: str = "en",
        api_version: str = API_VERSION,
        base_url: str = DEFAULT_URL,
        options: WsOptions | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model
        self.language = language
        self.api_version = api_version
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
    provider = "cartesia"
    min_chunk_bytes = 0

    def __init__(self, cfg: CartesiaSTT) -> None:
        self._cfg = cfg

    def url(self) -> str:
        c = self._cfg
        query = {
            "model": c.model,
            "language": c.language,
            "encoding": "pcm_s16le",
            "sample_rate": str(c.input_format.sample_rate),
        }
        return f"{c.base_url}?{urlencode(query)}"

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self._cfg._key, "Cartesia-Version": self._cfg.api_version}

    def opening(self) -> list[str]:
        return []

    def keepalive(self) -> str | None:
        return None

    def finalize(self) -> str:
        return "finalize"

    def closing(self, chunks_sent: int) -> str:
        return "done"

    def close_error(self, code: int | None) -> ProviderError | None:
        return None

    def parse(self, message: dict[str, Any]) -> Parsed:
        kind = message.get("type")
        if kind == "transcript":
            text = str(message.get("text", "")).strip()
            if message.get("is_final"):
                return Parsed([Transcription(text, final=True, end_of_turn=True)] if text else [])
            return Parsed([Transcription(text, final=False)] if text else [])
        if kind == "done":
            return Parsed(done=True)
        if kind == "error":
            # SDK shape: message, title, status_code, error_code; older docs: "error".
            detail = message.get("message") or message.get("error") or message.get("title")
            status = message.get("status_code")
            code = status if isinstance(status, int) else None
            if code in (401, 403):
                raise ProviderError(self.provider, "authentication failed", status=code)
            retry = code is not None and (code == 429 or code >= 500)
            raise ProviderError(
                self.provider, str(detail or "error")[:200], status=code, retryable=retry
            )
        return Parsed()
