"""Deepgram live streaming STT (``/v1/listen`` over a WebSocket).

Interim results arrive with ``is_final=false``; ``is_final=true`` fixes a span;
``speech_final=true`` (silence for ``endpointing_ms``) or an ``UtteranceEnd``
message ends the turn. An ``UtteranceEnd`` that follows finals without a
``speech_final`` is reported as an empty final with ``end_of_turn=True``.
Failures come as a close frame (code + ``DATA-``/``NET-`` reason) or, for a
bad client message, ``{"type":"Error","variant","description"}``.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlencode

from patter_core.audio.formats import MULAW_8K, PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.keys import resolve_key
from patter_core.providers.stt.ws import Parsed, WsOptions, WsSTTStream

DEFAULT_URL = "wss://api.deepgram.com/v1/listen"


class DeepgramSTT:
    name = "deepgram"
    env_var = "DEEPGRAM_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "nova-3",
        language: str = "en",
        encoding: Literal["linear16", "mulaw"] = "linear16",
        endpointing_ms: int = 300,
        utterance_end_ms: int = 1000,
        smart_format: bool = True,
        base_url: str = DEFAULT_URL,
        options: WsOptions | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model
        self.language = language
        self.encoding = encoding
        self.endpointing_ms = endpointing_ms
        self.utterance_end_ms = utterance_end_ms
        self.smart_format = smart_format
        self.base_url = base_url
        self.options = options or WsOptions()

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K if self.encoding == "linear16" else MULAW_8K

    async def open(self, call_id: str) -> WsSTTStream:
        stream = WsSTTStream(_Dialect(self), self.input_format, call_id, self.options)
        await stream.start()
        return stream


class _Dialect:
    provider = "deepgram"
    min_chunk_bytes = 0

    def __init__(self, cfg: DeepgramSTT) -> None:
        self._cfg = cfg
        self._final_pending = False  # finals heard since the last end of turn

    def url(self) -> str:
        c = self._cfg
        query = {
            "model": c.model,
            "language": c.language,
            "encoding": c.encoding,
            "sample_rate": str(c.input_format.sample_rate),
            "channels": "1",
            "interim_results": "true",
            "endpointing": str(c.endpointing_ms),
            "utterance_end_ms": str(c.utterance_end_ms),
            "vad_events": "true",
            "punctuate": "true",
            "smart_format": "true" if c.smart_format else "false",
        }
        return f"{c.base_url}?{urlencode(query)}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self._cfg._key}"}

    def opening(self) -> list[str]:
        return []

    def keepalive(self) -> str:
        return '{"type":"KeepAlive"}'

    def finalize(self) -> str:
        return '{"type":"Finalize"}'

    def closing(self, chunks_sent: int) -> str:
        return '{"type":"CloseStream"}'

    def close_error(self, code: int | None) -> ProviderError | None:
        # DATA-0000 (audio that cannot be decoded) closes with 1002 or 1008; a reconnect
        # would meet the same audio. NET-0000/NET-0001 timeouts close with 1011: retry.
        if code in (1002, 1008):
            return ProviderError(self.provider, f"audio rejected (close {code})", status=code)
        return None

    def parse(self, message: dict[str, Any]) -> Parsed:
        kind = message.get("type")
        if kind == "Results":
            return Parsed(self._results(message))
        if kind == "UtteranceEnd":
            if self._final_pending:
                self._final_pending = False
                return Parsed([Transcription("", final=True, end_of_turn=True)])
            return Parsed()
        if kind == "Metadata":
            return Parsed(done=True)  # sent last, after CloseStream
        if kind == "Error" or "err_code" in message:
            detail = message.get("description") or message.get("err_msg") or "error"
            raise ProviderError(self.provider, str(detail)[:200])
        return Parsed()

    def _results(self, message: dict[str, Any]) -> list[Transcription]:
        try:
            alt = message["channel"]["alternatives"][0]
            text = str(alt.get("transcript", "")).strip()
            confidence = alt.get("confidence")
        except (KeyError, IndexError, TypeError):
            return []
        final = bool(message.get("is_final"))
        end = final and bool(message.get("speech_final"))
        if not text and not (end and self._final_pending):
            return []
        if final:
            self._final_pending = not end and (bool(text) or self._final_pending)
        conf = float(confidence) if isinstance(confidence, int | float) else None
        return [Transcription(text, final=final, end_of_turn=end, confidence=conf)]
