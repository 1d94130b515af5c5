"""One streaming-STT client for every vendor that speaks JSON over a WebSocket.

A vendor module supplies a ``Dialect``: where to connect, what to send first,
how to read a server message, what the keep-alive / finalize / close messages
are. This stream owns the socket, the reader and keep-alive tasks, timeouts,
and one reconnect when the provider drops mid-call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

from patter_core.audio.formats import AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.http import shared_session
from patter_core.providers.stt.results import ResultChannel

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Parsed:
    """What one server message meant."""

    results: list[Transcription] = field(default_factory=list)
    done: bool = False  # the server finished after our close message


class Dialect(Protocol):
    provider: str
    min_chunk_bytes: int  # audio goes out in frames of exactly this size (0: as pushed)

    def url(self) -> str: ...

    def headers(self) -> dict[str, str]: ...

    def opening(self) -> list[str]:
        """Text frames sent right after connecting (configuration)."""
        ...

    def parse(self, message: dict[str, Any]) -> Parsed:
        """Read one JSON message; raise ``ProviderError`` for an error message."""
        ...

    def keepalive(self) -> str | None: ...

    def finalize(self) -> str | None: ...

    def closing(self, chunks_sent: int) -> str | None:
        """The close message; ``chunks_sent`` counts audio frames on this connection."""
        ...

    def close_error(self, code: int | None) -> ProviderError | None:
        """A server close code that means failure rather than a drop worth a reconnect."""
        ...


@dataclass(frozen=True, slots=True)
class WsOptions:
    connect_timeout: float = 10.0
    close_timeout: float = 5.0
    keepalive_s: float = 4.0
    reconnects: int = 1


class WsSTTStream:
    def __init__(
        self, dialect: Dialect, fmt: AudioFormat, call_id: str, options: WsOptions
    ) -> None:
        self._d = dialect
        self._fmt = fmt
        self._call_id = call_id
        self._opt = options
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._results = ResultChannel()
        self._bytes = 0
        self._chunks = 0
        self._closing = False
        self._done = asyncio.Event()
        self._sent_since_tick = False
        self._reader: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._reconnecting = False
        self._backlog = bytearray()  # audio held while reconnecting
        self._backlog_cap = fmt.sample_rate * fmt.bytes_per_sample * 5
        self._unsent = bytearray()  # audio waiting to fill a frame of ``min_chunk_bytes``

    @property
    def audio_seconds(self) -> float:
        return self._bytes / (self._fmt.sample_rate * self._fmt.bytes_per_sample)

    async def start(self) -> None:
        self._ws = await self._connect()
        self._reader = asyncio.create_task(self._read(), name=f"{self._d.provider}-stt-read")
        self._ticker = asyncio.create_task(self._keepalive(), name=f"{self._d.provider}-stt-ka")

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        provider = self._d.provider
        try:
            ws = await asyncio.wait_for(
                shared_session().ws_connect(
                    self._d.url(), headers=self._d.headers(), autoping=True, heartbeat=None
                ),
                timeout=self._opt.connect_timeout,
            )
        except TimeoutError as exc:
            raise ProviderError(provider, "connect timed out", retryable=True) from exc
        except aiohttp.WSServerHandshakeError as exc:
            auth = exc.status in (401, 403)
            msg = "authentication failed" if auth else f"handshake refused ({exc.status})"
            raise ProviderError(provider, msg, status=exc.status, retryable=not auth) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(provider, f"connect failed: {type(exc).__name__}") from exc
        for frame in self._d.opening():
            await ws.send_str(frame)
        return ws

    async def push_audio(self, payload: bytes) -> None:
        if self._closing or self._results.ended:
            return
        self._bytes += len(payload)
        size = self._d.min_chunk_bytes
        if not size:
            await self._send_audio(payload)
            return
        self._unsent += payload
        while len(self._unsent) >= size:  # frames of exactly ``size`` bytes
            frame = bytes(self._unsent[:size])
            del self._unsent[:size]
            await self._send_audio(frame)

    async def _send_audio(self, payload: bytes) -> None:
        ws = self._ws
        if self._reconnecting or ws is None or ws.closed:
            self._hold(payload)
            return
        try:
            await ws.send_bytes(payload)
        except (ConnectionError, aiohttp.ClientError):
            self._hold(payload)  # the reader notices the drop and reconnects or fails
            return
        self._chunks += 1
        self._sent_since_tick = True

    def _hold(self, payload: bytes) -> None:
        """Keep the latest few seconds of audio for after a reconnect."""
        self._backlog += payload
        if len(self._backlog) > self._backlog_cap:
            del self._backlog[: len(self._backlog) - self._backlog_cap]

    def results(self) -> AsyncIterator[Transcription]:
        return self._results.iterate()

    async def _send_text(self, text: str | None) -> None:
        ws = self._ws
        if text is None or ws is None or ws.closed:
            return
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_str(text)

    async def finalize(self) -> None:
        if not self._closing:
            await self._send_text(self._d.finalize())

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
        await self._send_text(self._d.closing(self._chunks))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), timeout=self._opt.close_timeout)
        if self._ws is not None:
            await self._ws.close()
        for task in (self._reader, self._ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._results.end()

    async def _keepalive(self) -> None:
        message = self._d.keepalive()
        if message is None:
            return
        while True:
            await asyncio.sleep(self._opt.keepalive_s)
            if not self._sent_since_tick:
                await self._send_text(message)
            self._sent_since_tick = False

    async def _read(self) -> None:
        attempts = self._opt.reconnects
        try:
            while True:
                await self._read_socket()
                if self._closing or self._done.is_set():
                    return
                assert self._ws is not None
                failure = self._d.close_error(self._ws.close_code)
                if failure is not None:
                    raise failure
                if attempts <= 0:
                    raise ProviderError(self._d.provider, "connection dropped", retryable=True)
                attempts -= 1
                log.warning(
                    "%s STT dropped on call %s; reconnecting", self._d.provider, self._call_id
                )
                self._reconnecting = True
                self._ws = await self._connect()
                self._chunks = 0  # a new session numbers its audio frames from the start
                held, self._backlog = bytes(self._backlog), bytearray()
                await self._resend(held)
                self._reconnecting = False
        except ProviderError as exc:
            self._results.fail(exc)
        except (ConnectionError, aiohttp.ClientError) as exc:
            reason = f"connection failed: {type(exc).__name__}"
            self._results.fail(ProviderError(self._d.provider, reason, retryable=True))
        finally:
            self._done.set()
            self._results.end()

    async def _resend(self, held: bytes) -> None:
        """Send audio held over a reconnect in frames of half a second at most."""
        ws = self._ws
        assert ws is not None
        half_second = self._fmt.sample_rate * self._fmt.bytes_per_sample // 2
        step = self._d.min_chunk_bytes or half_second
        for start in range(0, len(held), step):
            piece = held[start : start + step]
            if len(piece) < self._d.min_chunk_bytes:
                self._unsent[:0] = piece
                break
            await ws.send_bytes(piece)
            self._chunks += 1

    async def _read_socket(self) -> None:
        ws = self._ws
        assert ws is not None
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                log.warning("%s sent a non-JSON text frame; ignored", self._d.provider)
                continue
            if not isinstance(data, dict):
                continue
            parsed = self._d.parse(data)
            for item in parsed.results:
                self._results.put(item)
            if parsed.done:
                self._done.set()
                return
