"""AssemblyAI Universal Streaming v3 STT (``/v3/ws`` over a WebSocket).

The server sends ``Turn`` messages that grow while the caller speaks; the one
with ``end_of_turn`` ends the turn. With ``format_turns`` the service follows
an unformatted end of turn with a formatted copy, so only the formatted one is
reported as final to avoid saying the turn twice.

Audio frames must hold 50-1000 ms (close code 3007 otherwise), so the stream
sends 50 ms frames. A failure arrives as ``{"type":"Error","error_code",
"error"}`` followed by a close with that same code: 1008 for a bad key or an
account problem, 3005 server error, 3006 bad input, 3007 audio chunking or
rate, 3008 session expired, 3009 too many sessions. After 3005 and 3008 the
stream reconnects (once, as for a drop); the others fail it.
"""

from __future__ import annotations

import logging
from typing import Any, Literal
from urllib.parse import urlencode

from patter_core.audio.formats import MULAW_8K, PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.keys import resolve_key
from patter_core.providers.stt.ws import Parsed, WsOptions, WsSTTStream

log = logging.getLogger(__name__)

DEFAULT_URL = "wss://streaming.assemblyai.com/v3/ws"
CHUNK_MS = 50  # the shortest audio frame the service accepts

_CLOSE_CODES = {
    1008: "unauthorized connection",
    3005: "server error",
    3006: "invalid input",
    3007: "audio chunk duration or rate violation",
    3008: "session expired",
    3009: "too many concurrent sessions",
}
_RETRYABLE = {3005, 3008, 3009}
_RECONNECT = {3005, 3008}  # server error, 3 h session limit: a new session may work


def _failure(provider: str, code: int | None, detail: str) -> ProviderError:
    if code == 1008 and "concurrent" not in detail.lower():
        return ProviderError(provider, "authentication failed", status=code)
    return ProviderError(provider, detail[:200], status=code, retryable=code in _RETRYABLE)


class AssemblyAISTT:
    name = "assemblyai"
    env_var = "ASSEMBLYAI_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        speech_model: str = "universal-streaming-english",
        encoding: Literal["pcm_s16le", "pcm_mulaw"] = "pcm_s16le",
        format_turns: bool = True,
        base_url: str = DEFAULT_URL,
        options: WsOptions | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.speech_model = speech_model
        self.encoding = encoding
        self.format_turns = format_turns
        self.base_url = base_url
        self.options = options or WsOptions()

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K if self.encoding == "pcm_s16le" else MULAW_8K

    async def open(self, call_id: str) -> WsSTTStream:
        stream = WsSTTStream(_Dialect(self), self.input_format, call_id, self.options)
        await stream.start()
        return stream


class _Dialect:
    provider = "assemblyai"

    def __init__(self, cfg: AssemblyAISTT) -> None:
        self._cfg = cfg
        fmt = cfg.input_format
        self.min_chunk_bytes = fmt.sample_rate * fmt.bytes_per_sample * CHUNK_MS // 1000

    def url(self) -> str:
        c = self._cfg
        query = {
            "sample_rate": str(c.input_format.sample_rate),
            "encoding": c.encoding,
            "speech_model": c.speech_model,
            "format_turns": "true" if c.format_turns else "false",
        }
        return f"{c.base_url}?{urlencode(query)}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._cfg._key}  # the bare key, no scheme

    def opening(self) -> list[str]:
        return []

    def keepalive(self) -> str:
        return '{"type":"KeepAlive"}'

    def finalize(self) -> str:
        return '{"type":"ForceEndpoint"}'

    def closing(self, chunks_sent: int) -> str:
        return '{"type":"Terminate"}'

    def close_error(self, code: int | None) -> ProviderError | None:
        if code in _CLOSE_CODES and code not in _RECONNECT:
            return _failure(self.provider, code, _CLOSE_CODES[code])
        return None

    def parse(self, message: dict[str, Any]) -> Parsed:
        kind = message.get("type")
        if kind == "Turn":
            text = str(message.get("transcript", "")).strip()
            end = bool(message.get("end_of_turn"))
            formatted = bool(message.get("turn_is_formatted"))
            if end and (formatted or not self._cfg.format_turns):
                return Parsed([Transcription(text, final=True, end_of_turn=True)])
            return Parsed([Transcription(text, final=False)] if text else [])
        if kind == "Termination":
            return Parsed(done=True)
        if kind == "Error" or "error" in message:
            detail = str(message.get("error") or message.get("message") or "error")
            code = message.get("error_code")
            if code in _RECONNECT:
                log.warning("assemblyai: %s (%s); the close that follows reconnects", detail, code)
                return Parsed()
            raise _failure(self.provider, code if isinstance(code, int) else None, detail)
        return Parsed()
