"""Server-sent events, parsed incrementally from raw body bytes.

Follows the WHATWG event-stream rules that matter for LLM APIs: lines end in
CRLF, LF or CR (a CRLF may be split across chunks), ``:`` lines are comments,
several ``data:`` lines join with ``\\n``, a blank line dispatches the event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str
    id: str = ""


class SSEParser:
    """Feed body bytes as they arrive; get whole events back."""

    def __init__(self) -> None:
        self._buf = ""
        self._decoder_tail = b""
        self._skip_lf = False
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._id = ""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        raw = self._decoder_tail + chunk
        text, self._decoder_tail = _decode_prefix(raw)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text:
            text = text.removeprefix("\n")
            self._skip_lf = False
        self._buf += text
        events: list[SSEEvent] = []
        while True:
            cut = _line_end(self._buf)
            if cut is None:
                break
            end, width = cut
            if width == 1 and self._buf[end] == "\r" and end + 1 == len(self._buf):
                # A lone CR at the end of a chunk may be the first half of CRLF.
                self._skip_lf = True
            line = self._buf[:end]
            self._buf = self._buf[end + width :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SSEEvent]:
        """End of body: a last event without its blank line is still delivered."""
        events = self.feed(b"")
        if self._buf:
            event = self._line(self._buf)
            self._buf = ""
            if event is not None:
                events.append(event)
        if self._data:
            events.append(self._dispatch())
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            if self._data:
                return self._dispatch()
            self._event = ""
            return None
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
        self._event = ""
        self._data = []
        return event


def _line_end(buf: str) -> tuple[int, int] | None:
    cr = buf.find("\r")
    lf = buf.find("\n")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if cr + 1 < len(buf) and buf[cr + 1] == "\n":
        return cr, 2
    return cr, 1


def _decode_prefix(raw: bytes) -> tuple[str, bytes]:
    """Decode UTF-8, holding back an incomplete multi-byte sequence at the end."""
    for hold in range(min(3, len(raw)) + 1):
        try:
            return raw[: len(raw) - hold].decode("utf-8"), raw[len(raw) - hold :]
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace"), b""


async def iter_sse(resp: aiohttp.ClientResponse, *, read_timeout: float) -> AsyncIterator[SSEEvent]:
    """Events from a streaming response; ``TimeoutError`` if no bytes for ``read_timeout``."""
    parser = SSEParser()
    while True:
        chunk = await asyncio.wait_for(resp.content.readany(), timeout=read_timeout)
        if not chunk:
            for event in parser.close():
                yield event
            return
        for event in parser.feed(chunk):
            yield event
