"""Speechmatics real-time STT (``/v2`` over a WebSocket).

``StartRecognition`` configures the session (the server answers
``RecognitionStarted``); audio goes in binary frames, each acknowledged by an
``AudioAdded`` carrying its ``seq_no`` (1, 2, ... per connection);
``EndOfStream`` names the last one and the server answers ``EndOfTranscript``
once it has that much audio. ``AddTranscript`` fixes a span and
``EndOfUtterance`` (silence for ``end_of_utterance_s``, 0-2 s, or a
``ForceEndOfUtterance``) ends the turn. An ``Error`` (``type`` + ``reason``)
ends the session.
"""

from __future__ import annotations

import json
from typing import Any

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.keys import resolve_key
from patter_core.providers.stt.ws import Parsed, WsOptions, WsSTTStream

DEFAULT_URL = "wss://eu2.rt.speechmatics.com/v2"

_AUTH_ERRORS = {"not_authorised"}
_RETRYABLE_ERRORS = {"job_error", "idle_timeout", "session_timeout", "unknown_error"}


class SpeechmaticsSTT:
    name = "speechmatics"
    env_var = "SPEECHMATICS_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        language: str = "en",
        max_delay: float = 1.0,
        end_of_utterance_s: float = 0.5,
        base_url: str = DEFAULT_URL,
        options: WsOptions | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.language = language
        self.max_delay = max_delay
        self.end_of_utterance_s = end_of_utterance_s
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
    provider = "speechmatics"
    min_chunk_bytes = 0

    def __init__(self, cfg: SpeechmaticsSTT) -> None:
        self._cfg = cfg
        self._final_pending = False  # spans fixed since the last end of turn

    def url(self) -> str:
        return self._cfg.base_url

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._cfg._key}"}

    def opening(self) -> list[str]:
        c = self._cfg
        start = {
            "message": "StartRecognition",
            "audio_format": {
                "type": "raw",
                "encoding": "pcm_s16le",
                "sample_rate": c.input_format.sample_rate,
            },
            "transcription_config": {
                "language": c.language,
                "enable_partials": True,
                "max_delay": c.max_delay,
                "conversation_config": {"end_of_utterance_silence_trigger": c.end_of_utterance_s},
            },
        }
        return [json.dumps(start)]

    def keepalive(self) -> str | None:
        return None

    def finalize(self) -> str:
        return '{"message":"ForceEndOfUtterance"}'

    def closing(self, chunks_sent: int) -> str:
        return json.dumps({"message": "EndOfStream", "last_seq_no": chunks_sent})

    def close_error(self, code: int | None) -> ProviderError | None:
        return None  # failures arrive as an ``Error`` message before the close

    def parse(self, message: dict[str, Any]) -> Parsed:
        kind = message.get("message")
        if kind in ("AddTranscript", "AddPartialTranscript"):
            meta = message.get("metadata")
            text = str(meta.get("transcript", "")).strip() if isinstance(meta, dict) else ""
            if not text:
                return Parsed()
            final = kind == "AddTranscript"
            self._final_pending = self._final_pending or final
            return Parsed([Transcription(text, final=final)])
        if kind == "EndOfUtterance":
            if self._final_pending:
                self._final_pending = False
                return Parsed([Transcription("", final=True, end_of_turn=True)])
            return Parsed()
        if kind == "EndOfTranscript":
            return Parsed(done=True)
        if kind == "Error":
            err_type = str(message.get("type") or "")
            if err_type in _AUTH_ERRORS:
                raise ProviderError(self.provider, "authentication failed", status=401)
            detail = message.get("reason") or err_type or "error"
            retry = err_type in _RETRYABLE_ERRORS
            raise ProviderError(self.provider, str(detail)[:200], retryable=retry)
        return Parsed()
