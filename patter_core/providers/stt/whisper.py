"""OpenAI transcriptions (``POST /v1/audio/transcriptions``) on VAD-cut segments.

The endpoint transcribes whole files, not streams, so the stream cuts caller
audio into utterances with an energy detector: speech opens a segment and
``silence_ms`` of quiet (or ``finalize()``) closes it. Each segment is wrapped
as a WAV once and posted as multipart; the reply is one final, end-of-turn
result. Requests run one at a time in order, so turns are reported in order.
Any OpenAI-compatible server (Groq, a local whisper server) works via
``base_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import wave
from collections.abc import AsyncIterator

import aiohttp
import numpy as np

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.http import shared_session
from patter_core.providers.keys import resolve_key
from patter_core.providers.stt.results import ResultChannel

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.openai.com/v1"
_FRAME = 640  # 20 ms of 16 kHz PCM16


class WhisperSTT:
    name = "whisper"
    env_var = "OPENAI_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        model: str = "whisper-1",
        language: str | None = "en",
        prompt: str | None = None,
        silence_ms: int = 600,
        min_speech_ms: int = 200,
        energy_threshold: float = 500.0,
        max_segment_s: float = 30.0,
        request_timeout: float = 20.0,
        base_url: str = DEFAULT_URL,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model
        self.language = language
        self.prompt = prompt
        self.silence_ms = silence_ms
        self.min_speech_ms = min_speech_ms
        self.energy_threshold = energy_threshold
        self.max_segment_s = max_segment_s
        self.request_timeout = request_timeout
        self.base_url = base_url.rstrip("/")

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    async def open(self, call_id: str) -> WhisperSTTStream:
        return WhisperSTTStream(self, call_id)

    async def transcribe(self, pcm: bytes) -> str:
        """Post one segment of 16 kHz PCM16; return its text."""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(16000)
            wav.writeframes(pcm)
        form = aiohttp.FormData()
        form.add_field("file", buf.getvalue(), filename="speech.wav", content_type="audio/wav")
        form.add_field("model", self.model)
        form.add_field("response_format", "json")
        if self.language:
            form.add_field("language", self.language)
        if self.prompt:
            form.add_field("prompt", self.prompt)
        url = f"{self.base_url}/audio/transcriptions"
        headers = {"Authorization": f"Bearer {self._key}"}
        try:
            async with asyncio.timeout(self.request_timeout):
                async with shared_session().post(url, data=form, headers=headers) as resp:
                    if resp.status != 200:
                        raise _status_error(self.name, resp.status, await _detail(resp))
                    body = await resp.json(content_type=None)
        except TimeoutError as exc:
            raise ProviderError(self.name, "request timed out", retryable=True) from exc
        except aiohttp.ClientError as exc:
            msg = f"request failed: {type(exc).__name__}"
            raise ProviderError(self.name, msg, retryable=True) from exc
        except ValueError as exc:
            raise ProviderError(self.name, "reply was not JSON") from exc
        text = body.get("text") if isinstance(body, dict) else None
        return str(text or "").strip()


async def _detail(resp: aiohttp.ClientResponse) -> str:
    with contextlib.suppress(aiohttp.ClientError, ValueError, TimeoutError):
        body = await resp.json(content_type=None)
        err = body.get("error") if isinstance(body, dict) else None
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:200]
    return "request refused"


def _status_error(provider: str, status: int, detail: str) -> ProviderError:
    if status in (401, 403):
        return ProviderError(provider, "authentication failed", status=status)
    retry = status == 429 or status >= 500
    return ProviderError(provider, f"{detail} ({status})", status=status, retryable=retry)


class WhisperSTTStream:
    def __init__(self, stt: WhisperSTT, call_id: str) -> None:
        self._stt = stt
        self._call_id = call_id
        self._results = ResultChannel()
        self._segments: asyncio.Queue[tuple[bytes, bool] | object] = asyncio.Queue()
        self._pending = b""
        self._segment = bytearray()
        self._speech_bytes = 0
        self._quiet_bytes = 0
        self._bytes_in = 0
        self._closed = False
        self._silence_bytes = PCM16_16K.bytes_for_ms(stt.silence_ms)
        self._min_speech = PCM16_16K.bytes_for_ms(stt.min_speech_ms)
        self._max_bytes = int(stt.max_segment_s * 32000)
        self._worker = asyncio.create_task(self._run(), name=f"whisper-stt-{call_id}")

    @property
    def audio_seconds(self) -> float:
        return self._bytes_in / 32000

    async def push_audio(self, payload: bytes) -> None:
        if self._closed or self._results.ended:
            return
        self._bytes_in += len(payload)
        data = self._pending + payload
        n = len(data) - len(data) % _FRAME
        self._pending = data[n:]
        for start in range(0, n, _FRAME):
            self._frame(data[start : start + _FRAME])

    def _frame(self, frame: bytes) -> None:
        samples = np.frombuffer(frame, dtype=np.int16).astype(np.float32)
        loud = float(np.sqrt(np.mean(samples * samples))) >= self._stt.energy_threshold
        if not self._segment and not loud:
            return
        self._segment += frame
        if loud:
            self._speech_bytes += len(frame)
            self._quiet_bytes = 0
        else:
            self._quiet_bytes += len(frame)
        if self._quiet_bytes >= self._silence_bytes or len(self._segment) >= self._max_bytes:
            self._cut(end_of_turn=self._quiet_bytes >= self._silence_bytes)

    def _cut(self, *, end_of_turn: bool) -> None:
        if self._speech_bytes >= self._min_speech:
            self._segments.put_nowait((bytes(self._segment), end_of_turn))
        self._segment.clear()
        self._speech_bytes = self._quiet_bytes = 0

    def results(self) -> AsyncIterator[Transcription]:
        return self._results.iterate()

    async def finalize(self) -> None:
        if not self._closed:
            self._cut(end_of_turn=True)

    async def close(self) -> None:
        """Drop unsent audio and any request in flight: the call is over or barged in."""
        if self._closed:
            return
        self._closed = True
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._results.end()

    async def _run(self) -> None:
        try:
            while True:
                item = await self._segments.get()
                assert isinstance(item, tuple)
                pcm, end = item
                text = await self._stt.transcribe(pcm)
                if text:
                    self._results.put(Transcription(text, final=True, end_of_turn=end))
        except ProviderError as exc:
            log.warning("whisper STT failed on call %s: %s", self._call_id, exc)
            self._results.fail(exc)
        finally:
            self._results.end()
