"""One streaming-STT client for every vendor that speaks JSON over a WebSocket.

A vendor module supplies a ``Dialect``: where to connect, what to send first,
how to read a server message, what the keep-alive / finalize / close messages
are. This stream owns the socket, the reader and keep-alive tasks, timeouts,
and one reconnect when the provider drops mid-call.

Audio is sent from the call's media loop, so no send may wait without bound: a
send that cannot leave within ``send_timeout`` abandons the socket, and a peer
that stops answering pings is caught by the heartbeat. Both end the reader's
loop, which then reconnects or fails the stream like any other drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
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


# Pings start after this long without a frame from the vendor; no pong within half of it
# drops the socket, so a half-open or hung peer is noticed in ~1.5x this (15 s here).
HEARTBEAT_S = 10.0
# A send waits only once ~64 KiB plus the kernel's buffers are queued, seconds of audio
# already late; waiting longer would stall the call's media loop (marks, DTMF, barge-in).
SEND_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class WsOptions:
    connect_timeout: float = 10.0
    close_timeout: float = 5.0
    keepalive_s: float = 4.0
    reconnects: int = 1
    heartbeat_s: float | None = HEARTBEAT_S  # None: no pings (a vendor that ignores them)
    send_timeout: float = SEND_TIMEOUT_S


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
        self._stuck: str | None = None  # why this stream gave up on the current socket
        self._abandoning: dict[aiohttp.ClientWebSocketResponse, asyncio.Task[None]] = {}

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
                    self._d.url(),
                    headers=self._d.headers(),
                    autoping=True,
                    heartbeat=self._opt.heartbeat_s,
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
            if not await self._send(ws, frame):
                self._abandon(ws, "configuration not sent")
                raise ProviderError(provider, "configuration not sent", retryable=True)
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
        if not await self._send(ws, payload):
            self._hold(payload)  # the reader notices the drop and reconnects or fails
            return
        self._chunks += 1
        self._sent_since_tick = True

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, data: bytes | str) -> bool:
        """Send one frame within ``send_timeout``; False if the socket is closed or stuck.

        aiohttp waits unbounded for a paused transport to drain, so a vendor that stops
        reading would otherwise block the caller (the call's media loop) for good.
        """
        if ws in self._abandoning:
            return False
        try:
            async with asyncio.timeout(self._opt.send_timeout):
                if isinstance(data, str):
                    await ws.send_str(data)
                else:
                    await ws.send_bytes(data)
        except TimeoutError:
            self._abandon(ws, f"send timed out after {self._opt.send_timeout:g}s")
            return False
        except asyncio.CancelledError:
            if not _stray_cancel():
                raise
            self._abandon(ws, "send cut short")
            return False
        except (ConnectionError, aiohttp.ClientError):
            return False
        return True

    def _abandon(self, ws: aiohttp.ClientWebSocketResponse, reason: str) -> None:
        """Give up on a socket that stopped taking data, without waiting for it.

        The TCP connection is reset (a plain close would wait for unsent data a deaf
        peer never takes) and ``close()`` runs in the background; either ends the
        reader's ``async for``, so the reconnect-or-fail path runs as for any drop.
        """
        if ws.closed or ws in self._abandoning:
            return
        if ws is self._ws:
            self._stuck = reason
        log.warning("%s STT on call %s: %s", self._d.provider, self._call_id, reason)
        _reset(ws)
        task = asyncio.create_task(self._close_socket(ws), name=f"{self._d.provider}-stt-abandon")
        self._abandoning[ws] = task
        task.add_done_callback(lambda _: self._abandoning.pop(ws, None))

    async def _close_socket(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            await asyncio.wait_for(ws.close(), timeout=self._opt.close_timeout)
        except asyncio.CancelledError:
            if not _stray_cancel():
                raise
        except (TimeoutError, ConnectionError, aiohttp.ClientError):
            pass

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
        await self._send(ws, text)

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
            await self._close_socket(self._ws)
        for task in (self._reader, self._ticker, *self._abandoning.values()):
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
                try:
                    await self._read_socket()
                except asyncio.CancelledError:
                    if not _stray_cancel():  # else: an auto-pong met a poisoned drain
                        raise
                if self._closing or self._done.is_set():
                    return
                assert self._ws is not None
                failure = self._d.close_error(self._ws.close_code)
                if failure is not None:
                    raise failure
                why = self._drop_reason(self._ws)
                if attempts <= 0:
                    raise ProviderError(
                        self._d.provider, f"connection dropped{why}", retryable=True
                    )
                attempts -= 1
                log.warning(
                    "%s STT dropped on call %s%s; reconnecting",
                    self._d.provider,
                    self._call_id,
                    why,
                )
                self._reconnecting = True
                self._stuck = None
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

    def _drop_reason(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """`` (why)`` for a socket this side gave up on, else empty (the vendor closed it)."""
        if self._stuck is not None:
            return f" ({self._stuck})"
        if isinstance(ws.exception(), aiohttp.ServerTimeoutError):
            return f" (no pong within {(self._opt.heartbeat_s or 0) / 2:g}s)"
        return ""

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
            if not await self._send(ws, piece):
                return  # the new socket is stuck or gone too: the reader's loop sees it end
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


def _stray_cancel() -> bool:
    """A ``CancelledError`` that no one aimed at the current task.

    aiohttp's writer shares one drain future among everything sending on a socket;
    once a timed-out send cancels it, every other waiter (another send, the close
    frame, an auto-pong) gets a ``CancelledError`` of its own: a dead socket, not a
    cancelled task.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() == 0


def _reset(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Reset the TCP connection (RST, unsent data dropped): the transport then fails fast."""
    sock = ws.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
