"""AssemblyAI Universal Streaming v3 STT (``/v3/ws`` over a WebSocket).

The server sends ``Turn`` messages that grow while the caller speaks; the one
with ``end_of_turn`` ends the turn. With ``format_turns`` the service follows
an unformatted end of turn with a formatted copy, so only the formatted one is
reported as final to avoid saying the turn twice.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlencode

from patter_core.audio.formats import MULAW_8K, PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.keys import resolve_key
from patter_core.providers.stt.ws import Parsed, WsOptions, WsSTTStream

DEFAULT_URL = "wss://streaming.assemblyai.com/v3/ws"


class AssemblyAISTT:
    name = "assemblyai"

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
        self._key = resolve_key(api_key, "ASSEMBLYAI_API_KEY", self.name)
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

    def keepalive(self) -> str | None:
        return None  # the session stays open on silence; no keep-alive message exists

    def finalize(self) -> str:
        return '{"type":"ForceEndpoint"}'

    def closing(self, chunks_sent: int) -> str:
        return '{"type":"Terminate"}'

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
            detail = message.get("error") or message.get("message") or "error"
            raise ProviderError(self.provider, str(detail)[:200])
        return Parsed()
