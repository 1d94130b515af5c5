"""Cartesia TTS over its WebSocket (``/tts/websocket``), one context per utterance.

One socket per ``CartesiaTTS`` carries many utterances at once, each under its
own ``context_id``; a reader task routes the server's frames to them. Closing
an utterance's iterator (barge-in) sends ``{"context_id", "cancel": true}`` so
the server stops generating, and nothing more of it is handed out. Cartesia
emits ``pcm_mulaw`` at 8 kHz, so a Twilio call needs no conversion at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from patter_core.audio.formats import AudioFormat, Encoding
from patter_core.providers.base import ProviderError
from patter_core.providers.keys import resolve_key
from patter_core.providers.tts import ws_stream

DEFAULT_URL = "wss://api.cartesia.ai"
# "Katie", the voice Cartesia's own quickstart and SDK README use (also livekit's default).
DEFAULT_VOICE = "f786b574-daa5-4673-aa0c-cbe3e8534c02"
# Cartesia's current flagship model (cartesia-python lists sonic-3.5 and sonic-3; sonic-2 is gone).
DEFAULT_MODEL = "sonic-3.5"

_ENCODINGS = {"pcm_s16le": Encoding.PCM16, "pcm_mulaw": Encoding.MULAW, "pcm_alaw": Encoding.ALAW}
_RATES = (8000, 16000, 22050, 24000, 44100, 48000)

# What the reader hands an utterance: a server frame, or the reason the socket went away.
_Item = dict[str, Any] | ProviderError


class CartesiaTTS:
    name = "cartesia"
    env_var = "CARTESIA_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        voice: str = DEFAULT_VOICE,
        model: str = DEFAULT_MODEL,
        language: str = "en",
        encoding: str = "pcm_s16le",
        sample_rate: int = 16000,
        api_version: str = "2026-03-01",
        base_url: str = DEFAULT_URL,
        connect_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        if encoding not in _ENCODINGS:
            raise ValueError(f"encoding must be one of {sorted(_ENCODINGS)}")
        if sample_rate not in _RATES:
            raise ValueError(f"sample_rate must be one of {_RATES}")
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.voice = voice
        self.model = model
        self.language = language
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.api_version = api_version
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.characters = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._contexts: dict[str, asyncio.Queue[_Item]] = {}
        self._connecting = asyncio.Lock()
        self._sending = asyncio.Lock()

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat(_ENCODINGS[self.encoding], self.sample_rate)

    async def synthesize(self, text: str) -> AsyncGenerator[bytes, None]:
        if not text.strip():
            return
        ws = await self._connection()
        context_id = f"patter-{uuid.uuid4().hex}"
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._contexts[context_id] = queue
        finished = False
        try:
            await self._send(ws, self._request(context_id, text))
            self.characters += len(text)
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=self.read_timeout)
                except TimeoutError as exc:
                    raise ProviderError(self.name, "audio stream stalled", retryable=True) from exc
                if isinstance(item, ProviderError):
                    finished = True  # the socket is gone; nothing to cancel
                    # One reason is shared by every open utterance: raise a copy of it each.
                    detail = str(item).removeprefix(f"{self.name}: ")
                    raise ProviderError(
                        self.name, detail, status=item.status, retryable=item.retryable
                    ) from item
                kind = item.get("type")
                if kind == "chunk":
                    audio = ws_stream.b64_audio(self.name, item.get("data"))
                    if audio:
                        yield audio
                elif kind == "done" or (kind != "error" and item.get("done") is True):
                    finished = True
                    return
                elif kind == "error":
                    finished = True
                    raise _error(self.name, item, self._key)
        finally:
            self._contexts.pop(context_id, None)
            if not finished and not ws.closed:
                # Barge-in or a local failure: tell Cartesia to stop this context now.
                with contextlib.suppress(ProviderError):
                    await self._send(ws, {"context_id": context_id, "cancel": True}, timeout=1.0)

    def _request(self, context_id: str, text: str) -> dict[str, Any]:
        return {
            "context_id": context_id,
            "model_id": self.model,
            "transcript": text,
            "continue": False,
            "voice": {"mode": "id", "id": self.voice},
            "language": self.language,
            "output_format": {
                "container": "raw",
                "encoding": self.encoding,
                "sample_rate": self.sample_rate,
            },
        }

    async def _connection(self) -> aiohttp.ClientWebSocketResponse:
        """The shared socket, opened on first use and again after a drop."""
        async with self._connecting:
            if self._ws is not None and not self._ws.closed:
                return self._ws
            await self._stop_reader()
            ws = await ws_stream.connect(
                self.name,
                f"{self.base_url}/tts/websocket",
                headers={"X-API-Key": self._key, "Cartesia-Version": self.api_version},
                timeout=self.connect_timeout,
                heartbeat=20.0,
            )
            self._ws = ws
            self._reader = asyncio.create_task(self._read(ws), name="cartesia-tts-reader")
            return ws

    async def _send(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        message: dict[str, Any],
        timeout: float | None = None,
    ) -> None:
        """Frames from concurrent utterances go out whole, one at a time; the wait
        for the turn counts against the same timeout."""
        limit = timeout or self.connect_timeout
        try:
            async with asyncio.timeout(limit), self._sending:
                await ws_stream.send_json(self.name, ws, message, limit)
        except TimeoutError as exc:
            raise ProviderError(self.name, "send timed out", retryable=True) from exc

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Route frames by ``context_id``; on a drop, fail every open utterance.

        Waits without a timeout on purpose: the socket idles between replies, and
        each utterance bounds its own wait with ``read_timeout``.
        """
        reason: ProviderError | None = None
        try:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                frame = ws_stream.parse_object(msg.data)
                queue = self._contexts.get(str(frame.get("context_id", "")))
                if queue is not None:
                    queue.put_nowait(frame)
                elif frame.get("type") == "error" and not frame.get("context_id"):
                    reason = _error(self.name, frame, self._key)
            if reason is None:
                reason = ws_stream.dropped(self.name, ws)
        except aiohttp.ClientError as exc:
            reason = ProviderError(
                self.name, f"audio stream dropped: {type(exc).__name__}", retryable=True
            )
        finally:
            if reason is None:
                reason = ProviderError(self.name, "connection closed", retryable=True)
            for queue in self._contexts.values():
                queue.put_nowait(reason)
            if self._ws is ws:
                self._ws = None

    async def _stop_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def close(self) -> None:
        """Close the shared socket; open utterances fail as dropped."""
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws_stream.close_quietly(ws)
        await self._stop_reader()


def _error(provider: str, frame: dict[str, Any], key: str) -> ProviderError:
    status = frame.get("status_code")
    code = status if isinstance(status, int) else None
    what = ws_stream.server_text(frame.get("title") or frame.get("error_code") or "error", key)
    detail = ws_stream.server_text(frame.get("message") or frame.get("error") or "", key)
    return ProviderError(
        provider,
        f"{what}: {detail}" if detail else what,
        status=code,
        retryable=code is not None and (code == 429 or code >= 500),
    )
