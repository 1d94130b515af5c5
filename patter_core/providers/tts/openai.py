"""OpenAI speech (``/v1/audio/speech``) streamed as headerless 24 kHz PCM16."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from patter_core.audio.formats import PCM16_24K, AudioFormat
from patter_core.providers.keys import resolve_key
from patter_core.providers.tts.http_stream import stream_post

DEFAULT_URL = "https://api.openai.com/v1"


class OpenAITTS:
    name = "openai"
    env_var = "OPENAI_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "alloy",
        instructions: str | None = None,
        speed: float = 1.0,
        base_url: str = DEFAULT_URL,
        connect_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model
        self.voice = voice
        self.instructions = instructions
        self.speed = speed
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.characters = 0

    @property
    def output_format(self) -> AudioFormat:
        return PCM16_24K

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        self.characters += len(text)
        body: dict[str, Any] = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": "pcm",
            "speed": self.speed,
        }
        if self.instructions:
            body["instructions"] = self.instructions
        async for chunk in stream_post(
            self.name,
            f"{self.base_url}/audio/speech",
            headers={
                "Authorization": f"Bearer {self._key}",
                "Accept": "application/octet-stream",
            },
            json_body=body,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            secret=self._key,
        ):
            yield chunk

    async def close(self) -> None:
        """Connections belong to the shared session (``close_shared_session``)."""
