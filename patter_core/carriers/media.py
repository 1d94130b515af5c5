"""What every JSON media-stream leg shares: the receive loop and paced playback.

Carriers differ only in message shapes. The receive loop turns socket trouble
(silence, errors, a close without ``stop``) into exactly one ``LegStopped``;
``PacedOutput`` cuts agent audio into whole 20 ms frames, sends up to
``MAX_CHUNK_MS`` of them per message and no more than ``lead_ms`` ahead of real
time, so ``clear`` on barge-in has little to flush and marks come back close to
when the caller actually heard the audio.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import socket
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from patter_core.audio.formats import AudioFormat
from patter_core.audio.transcode import FrameSlicer
from patter_core.carriers.base import LegDtmf, LegEvent, LegMark, LegStopped

log = logging.getLogger(__name__)

FRAME_MS = 20
# The most audio one outbound message carries. Both carriers take longer messages
# (Twilio any length, Telnyx 20 ms to 30 s in rtp mode): a reply faster than real
# time goes out in 100 ms messages, a fifth of the messages (and of their CPU) that
# 20 ms ones would cost. The session marks every 100 ms, so marks stay as fine.
MAX_CHUNK_MS = 100
DEFAULT_LEAD_MS = 200
# Carriers send 50 media messages a second; silence this long is a dead socket.
RECEIVE_TIMEOUT_S = 30.0
# How long a silent socket gets to take our close frame before it is cut.
CLOSE_GRACE_S = 2.0
# Media messages are ~300 bytes; anything far larger is counted and skipped.
MAX_MEDIA_MESSAGE = 64 * 1024
DTMF_DIGITS = "0123456789*#ABCDabcd"

Parser = Callable[[str], LegEvent | None]
Handler = Callable[[dict[str, Any]], LegEvent | None]
# What a malformed message of a known kind raises while being read.
MALFORMED = (KeyError, TypeError, ValueError, AttributeError, binascii.Error)


def parse_message(
    text: str,
    handlers: Mapping[str, Handler],
    *,
    stats: Counter[str],
    call_id: str,
) -> LegEvent | None:
    """One inbound JSON message → a leg event, or None (counted in ``stats``).

    The kinds every carrier shares (``mark``, ``dtmf``, ``stop``, ``connected``)
    are read here; ``handlers`` read the carrier's own (``media``, ``start``, …).
    Nothing a carrier sends can raise out of this function.
    """
    if len(text) > MAX_MEDIA_MESSAGE:
        stats["oversized"] += 1
        return None
    try:
        msg = orjson.loads(text)
        kind = msg["event"]
    except (ValueError, KeyError, TypeError, RecursionError):  # deep nesting: RecursionError
        stats["malformed"] += 1
        log.debug("call %s: malformed media message", call_id)
        return None
    try:
        handler = handlers.get(kind)
        if handler is not None:
            return handler(msg)
        if kind == "mark":
            return LegMark(str(msg["mark"]["name"]))
        if kind == "dtmf":
            digit = str(msg["dtmf"]["digit"])
            if len(digit) != 1 or digit not in DTMF_DIGITS:
                raise ValueError(digit)
            return LegDtmf(digit)
        if kind == "stop":
            return LegStopped("hangup", "carrier sent stop")
        if kind == "connected":
            return None
    except MALFORMED:
        stats["malformed"] += 1
        log.debug("call %s: malformed %s message", call_id, kind)
        return None
    stats["unknown"] += 1
    return None


async def send_json(
    ws: web.WebSocketResponse, message: dict[str, object], stats: Counter[str]
) -> None:
    """Send one message; a socket already gone is counted, not raised."""
    await send_text(ws, orjson.dumps(message).decode(), stats)


async def send_text(ws: web.WebSocketResponse, text: str, stats: Counter[str]) -> None:
    """Send one message already serialised; a socket already gone is counted, not raised."""
    if ws.closed:
        return
    try:
        await ws.send_str(text)
    except (ConnectionError, RuntimeError):
        stats["send_failed"] += 1


async def close_leg(ws: web.WebSocketResponse, output: PacedOutput) -> None:
    """Stop paced playback, then close the socket (bounded wait for the peer)."""
    await output.close()
    if not ws.closed:
        await close_bounded(ws, ws.get_extra_info("socket"))


async def close_bounded(
    ws: web.WebSocketResponse,
    sock: socket.socket | None,
    code: int = WSCloseCode.OK,
) -> None:
    """Close a media socket, however the peer behaves.

    A peer that stopped reading cannot take the close frame (the write waits
    for a drain that never comes), so after ``CLOSE_GRACE_S`` the socket is
    shut down under the transport: the read side sees EOF, which ends any
    pending receive, and the pending write fails, which ends the close.
    """
    closing = asyncio.ensure_future(ws.close(code=code))
    try:
        done, _ = await asyncio.wait([closing], timeout=CLOSE_GRACE_S)
        if not done and sock is not None:
            log.warning("media socket not taking its close: cutting the connection")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            await asyncio.wait([closing], timeout=CLOSE_GRACE_S)
    finally:
        if not closing.done():
            closing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await closing


class IdleWatchdog:
    """Closes a socket that has been silent for ``timeout`` seconds.

    One timer per leg, re-armed only when it fires, instead of a timeout per
    receive: at 50 messages a second per call, a per-message timeout context
    (or, worse, ``wait_for``'s task per message on 3.11) was a measurable share
    of the server's CPU. The receive loop only stamps the time.
    """

    def __init__(self, ws: web.WebSocketResponse, timeout: float) -> None:
        self._ws = ws
        self._sock = ws.get_extra_info("socket")  # kept now: a closing transport drops it
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self.last = self._loop.time()
        self.expired = False
        self._closer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(timeout, self._check)

    def touch(self) -> None:
        self.last = self._loop.time()

    def _check(self) -> None:
        if self._ws.closed:  # the leg is gone: nothing left to watch
            self._timer = None
            return
        idle = self._loop.time() - self.last
        if idle < self._timeout:
            self._timer = self._loop.call_later(self._timeout - idle, self._check)
            return
        self._timer = None
        self.expired = True
        self._closer = asyncio.ensure_future(self._expire())

    async def _expire(self) -> None:
        """Close from outside, which ends the pending receive() with a CLOSING message."""
        await close_bounded(self._ws, self._sock, WSCloseCode.GOING_AWAY)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closer is not None and not self._closer.done():
            self._closer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._closer


async def receive_events(
    ws: web.WebSocketResponse,
    parse: Parser,
    *,
    stats: Counter[str],
    closed_by_us: Callable[[], bool],
    timeout: float = RECEIVE_TIMEOUT_S,
) -> AsyncIterator[LegEvent]:
    """Parsed inbound events, ending with exactly one ``LegStopped``."""
    watchdog = IdleWatchdog(ws, timeout)
    try:
        while True:
            msg = await ws.receive()
            watchdog.touch()
            if msg.type == WSMsgType.TEXT:
                event = parse(msg.data)
                if event is not None:
                    yield event
                    if isinstance(event, LegStopped):
                        return
            elif msg.type == WSMsgType.BINARY:
                stats["binary"] += 1
            elif watchdog.expired:  # we closed it, or cut it, for silence
                yield LegStopped("dropped", f"nothing received for {timeout:g} s")
                return
            elif msg.type == WSMsgType.ERROR:
                yield LegStopped("dropped", f"socket error: {ws.exception()!r}")
                return
            else:  # CLOSE, CLOSING, CLOSED
                if closed_by_us():
                    yield LegStopped("closed", "closed by us")
                else:
                    yield LegStopped("dropped", "socket closed without a stop message")
                return
    finally:
        await watchdog.stop()


@dataclass(slots=True)  # not frozen: one per queued frame (see LegAudio)
class _Audio:
    payload: bytes


@dataclass(frozen=True, slots=True)
class _Mark:
    name: str


class PacedOutput:
    """Agent audio and marks, queued in order and sent on a real-time budget.

    ``send_media`` and ``send_mark`` write one carrier message each; this class
    decides only what goes out and when.
    """

    def __init__(
        self,
        fmt: AudioFormat,
        send_media: Callable[[bytes], Awaitable[None]],
        send_mark: Callable[[str], Awaitable[None]],
        *,
        lead_ms: int = DEFAULT_LEAD_MS,
        name: str = "media-send",
    ) -> None:
        self._fmt = fmt
        self._bytes_per_s = fmt.bytes_for_ms(1000)
        self._send_media = send_media
        self._send_mark = send_mark
        self._lead_s = lead_ms / 1000
        self._name = name
        self._out: deque[_Audio | _Mark] = deque()
        self._ready = asyncio.Event()
        self._slicer = FrameSlicer(fmt, FRAME_MS)
        # Whole frames only: every message but a reply's last holds a whole number of them.
        frames = max(MAX_CHUNK_MS // FRAME_MS, 1)
        self._max_chunk = frames * self._slicer.frame_bytes
        self._sender: asyncio.Task[None] | None = None
        self._play_until = 0.0  # monotonic time the carrier finishes what we sent
        self._closed = False

    def _ensure_sender(self) -> None:
        if self._sender is None and not self._closed:
            self._sender = asyncio.create_task(self._loop(), name=self._name)

    async def push_audio(self, payload: bytes) -> None:
        if self._closed or not payload:
            return
        whole = self._slicer.whole(payload)  # 20 ms live audio comes back as it went in
        step = self._max_chunk
        for i in range(0, len(whole), step):
            await self._audio(whole[i : i + step])

    async def push_mark(self, name: str) -> None:
        if self._closed:
            return
        rest = self._slicer.remainder()
        if rest:  # a mark closes a chunk: send its tail rather than hold it back
            await self._audio(rest)
        if self._out:
            self._queue(_Mark(name))
        else:
            await self._send_mark(name)

    async def _audio(self, frame: bytes) -> None:
        """Send at once when nothing is queued and the budget allows, else queue for the sender.

        Sending in the caller's task saves a hand-off to the sender task per frame,
        which is the common case: a live reply arrives no faster than real time.
        Order holds because the socket write happens before the first await.
        """
        now = time.monotonic()
        if self._out or self._play_until - now > self._lead_s:
            self._queue(_Audio(frame))
            return
        self._play_until = max(self._play_until, now) + len(frame) / self._bytes_per_s
        await self._send_media(frame)

    def _queue(self, item: _Audio | _Mark) -> None:
        self._out.append(item)
        self._ready.set()
        self._ensure_sender()

    def drop_queued(self) -> None:
        """Forget everything not yet sent (the carrier is told to clear separately)."""
        self._out.clear()
        self._slicer.remainder()
        self._play_until = 0.0

    async def _loop(self) -> None:
        while not self._closed:
            if not self._out:
                self._ready.clear()
                await self._ready.wait()
                continue
            now = time.monotonic()
            ahead = self._play_until - now
            if ahead > self._lead_s:
                await asyncio.sleep(ahead - self._lead_s)
                continue
            item = self._out.popleft()
            if isinstance(item, _Mark):
                await self._send_mark(item.name)
                continue
            payload = self._join_queued(item.payload)
            await self._send_media(payload)
            self._play_until = max(self._play_until, now) + len(payload) / self._bytes_per_s

    def _join_queued(self, payload: bytes) -> bytes:
        """``payload`` and the audio queued right behind it, up to ``MAX_CHUNK_MS``
        (never past a mark, which must follow exactly the audio before it)."""
        out = self._out
        if not out or not isinstance(out[0], _Audio):
            return payload
        frame = self._slicer.frame_bytes
        parts, size = [payload], len(payload)
        while out and isinstance(head := out[0], _Audio):
            room = (self._max_chunk - size) // frame * frame
            if room <= 0:
                break
            take = head.payload[:room]
            if len(take) == len(head.payload):
                out.popleft()
            else:  # the rest of that piece leads the next message
                out[0] = _Audio(head.payload[room:])
            parts.append(take)
            size += len(take)
        return b"".join(parts)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
