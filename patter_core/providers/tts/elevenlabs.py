"""ElevenLabs streaming TTS over HTTP (``/v1/text-to-speech/{voice_id}/stream``).

``output_format`` is chosen to match the far edge where ElevenLabs offers it:
``ulaw_8000`` for a μ-law carrier skips every conversion; ``pcm_16000`` matches
the session format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from patter_core.audio.formats import AudioFormat, Encoding
from patter_core.providers.keys import resolve_key
from patter_core.providers.tts.http_stream import stream_post

DEFAULT_URL = "https://api.elevenlabs.io"

_FORMATS = {
    "ulaw_8000": AudioFormat(Encoding.MULAW, 8000),
    "alaw_8000": AudioFormat(Encoding.ALAW, 8000),
    **{
        f"pcm_{r}": AudioFormat(Encoding.PCM16, r)
        for r in (8000, 16000, 22050, 24000, 32000, 44100, 48000)
    },
}


# ElevenLabs' premade voices by name, so ``voice_id="rachel"`` (as the product
# docs write it) names the voice instead of a 404; any other value is an id.
PREMADE_VOICES = {
    "rachel": "21m00Tcm4TlvDq8ikWAM",
    "drew": "29vD33N1CtxCmqQRPOHJ",
    "clyde": "2EiwWnXFnvU5JabPnv8n",
    "paul": "5Q0t7uMcjvnagumLfvZi",
    "aria": "9BWtsMINqrJLrRacOk9x",
    "domi": "AZnzlk1XvdvUeBnXmlld",
    "dave": "CYw3kZ02Hs0563khs1Fj",
    "roger": "CwhRBWXzGAHq8TQ4Fs17",
    "fin": "D38z5RcWu1voky8WS1ja",
    "bella": "EXAVITQu4vr4xnSDxMaL",
    "antoni": "ErXwobaYiN019PkySvjV",
    "elli": "MF3mGyEYCl7XYWbV9V6O",
    "josh": "TxGEqnHWrfWFTfGW9XjX",
    "arnold": "VR6AewLTigWG4xSOukaG",
    "adam": "pNInz6obpgDQGcFmaJgB",
    "sam": "yoZ06aMxZJJ28mfd3POQ",
}


class ElevenLabsTTS:
    name = "elevenlabs"
    env_var = "ELEVENLABS_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        voice_id: str = "21m00Tcm4TlvDq8ikWAM",
        model_id: str = "eleven_flash_v2_5",
        output_format: str = "pcm_16000",
        language_code: str | None = None,
        voice_settings: dict[str, Any] | None = None,
        base_url: str = DEFAULT_URL,
        connect_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        if output_format not in _FORMATS:
            raise ValueError(f"output_format must be one of {sorted(_FORMATS)}")
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.voice_id = PREMADE_VOICES.get(voice_id.lower(), voice_id)
        self.model_id = model_id
        self._format_name = output_format
        self.language_code = language_code
        self.voice_settings = voice_settings
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.characters = 0

    @property
    def output_format(self) -> AudioFormat:
        return _FORMATS[self._format_name]

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        self.characters += len(text)
        body: dict[str, Any] = {"text": text, "model_id": self.model_id}
        if self.language_code:
            body["language_code"] = self.language_code
        if self.voice_settings:
            body["voice_settings"] = self.voice_settings
        url = (
            f"{self.base_url}/v1/text-to-speech/{self.voice_id}/stream"
            f"?output_format={self._format_name}"
        )
        async for chunk in stream_post(
            self.name,
            url,
            headers={"xi-api-key": self._key, "Accept": "audio/*"},
            json_body=body,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            secret=self._key,
        ):
            yield chunk

    async def close(self) -> None:
        """Connections belong to the shared session (``close_shared_session``)."""
