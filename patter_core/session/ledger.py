"""What the caller has actually heard.

Outbound audio is grouped into chunks, each followed by a carrier mark; a
chunk counts as *heard* only once its mark comes back. A brain that streams
20 ms frames would cost a mark (two messages) per frame, so small pieces are
gathered into an *open* chunk and marked once it holds ``min_ms`` of audio,
when another reply starts, or when the reply ends (``seal``). After ``clear`` carriers echo every
pending mark at once (Twilio does), so chunks dropped by a clear are retired
first and their late acknowledgements are ignored. Barge-in, transcript cuts,
"agent is speaking" and the heard-latency metric all read this one ledger.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from patter_core.audio.formats import AudioFormat


@dataclass(slots=True)
class _Chunk:
    mark: str
    response_id: str
    pieces: list[bytes]
    duration_ms: float
    end_ms: float  # cumulative audio of this response up to the chunk's end
    sent_at: float


@dataclass(slots=True)
class ResponsePlayback:
    """Playback facts for one agent reply."""

    response_id: str
    sent_ms: float = 0.0
    heard_ms: float = 0.0
    first_sent_at: float | None = None
    first_heard_at: float | None = None
    cleared: bool = False


class PlaybackLedger:
    def __init__(
        self,
        fmt: AudioFormat,
        *,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "p",
    ) -> None:
        self._fmt = fmt
        self._clock = clock
        self._prefix = prefix
        self._counter = 0
        self._outstanding: deque[_Chunk] = deque()
        self._open: _Chunk | None = None  # sent, not yet followed by a mark
        self._responses: dict[str, ResponsePlayback] = {}
        self._retired: set[str] = set()

    def _bytes_to_ms(self, n: int) -> float:
        return n / (self._fmt.sample_rate * self._fmt.bytes_per_sample) * 1000.0

    def response(self, response_id: str) -> ResponsePlayback:
        rp = self._responses.get(response_id)
        if rp is None:
            rp = self._responses[response_id] = ResponsePlayback(response_id)
        return rp

    @property
    def open_response(self) -> str | None:
        """The reply whose audio was sent without a mark yet."""
        return self._open.response_id if self._open is not None else None

    def open_bytes(self, response_id: str) -> int:
        """Bytes of ``response_id`` sent since its last mark (0 if another reply's is open)."""
        chunk = self._open
        if chunk is None or chunk.response_id != response_id:
            return 0
        return sum(len(p) for p in chunk.pieces)

    def record_sent(self, response_id: str, payload: bytes, *, min_ms: float = 0.0) -> str | None:
        """Register audio sent; returns a mark name to send after it once ``min_ms`` is gathered.

        Seal the open chunk first when another reply's audio is about to go out.
        """
        rp = self.response(response_id)
        dur = self._bytes_to_ms(len(payload))
        rp.sent_ms += dur
        now = self._clock()
        if rp.first_sent_at is None:
            rp.first_sent_at = now
        chunk = self._open
        if chunk is None or chunk.response_id != response_id:
            if chunk is not None:
                raise RuntimeError("seal() the open chunk before sending another reply's audio")
            chunk = self._open = _Chunk("", response_id, [], 0.0, 0.0, now)
        chunk.pieces.append(payload)
        chunk.duration_ms += dur
        chunk.end_ms = rp.sent_ms
        if chunk.duration_ms + 1e-6 >= min_ms:
            return self.seal()
        return None

    def seal(self) -> str | None:
        """Close the open chunk; returns the mark to send after it (None if nothing was open)."""
        chunk, self._open = self._open, None
        if chunk is None:
            return None
        self._counter += 1
        chunk.mark = f"{self._prefix}{self._counter}"
        self._outstanding.append(chunk)
        return chunk.mark

    def ack(self, mark: str) -> ResponsePlayback | None:
        """A mark came back: it and every chunk queued before it were played."""
        if mark in self._retired:
            self._retired.discard(mark)
            return None
        if not any(c.mark == mark for c in self._outstanding):
            return None
        now = self._clock()
        last: ResponsePlayback | None = None
        while self._outstanding:
            chunk = self._outstanding.popleft()
            rp = self.response(chunk.response_id)
            rp.heard_ms = max(rp.heard_ms, chunk.end_ms)
            if rp.first_heard_at is None:
                rp.first_heard_at = now
            last = rp
            if chunk.mark == mark:
                break
        return last

    def clear(self) -> dict[str, list[bytes]]:
        """Retire every unacknowledged chunk (a ``clear`` was sent); returns their audio per reply.

        The audio is kept so a false interruption can replay exactly what was cut.
        """
        dropped: dict[str, list[bytes]] = {}
        if self._open is not None:  # no mark went out for it: nothing to retire
            self._outstanding.append(self._open)
            self._open = None
        while self._outstanding:
            chunk = self._outstanding.popleft()
            if chunk.mark:
                self._retired.add(chunk.mark)
            dropped.setdefault(chunk.response_id, []).extend(chunk.pieces)
            rp = self.response(chunk.response_id)
            rp.cleared = True
            # Replayed audio continues from what was heard, not from what was sent.
            rp.sent_ms = rp.heard_ms
        return dropped

    @property
    def speaking(self) -> bool:
        """Agent audio is queued at the carrier and not yet confirmed played."""
        return bool(self._outstanding) or self._open is not None

    @property
    def outstanding_ms(self) -> float:
        open_ms = self._open.duration_ms if self._open is not None else 0.0
        return sum(c.duration_ms for c in self._outstanding) + open_ms

    def heard_ms(self, response_id: str) -> float:
        rp = self._responses.get(response_id)
        return rp.heard_ms if rp else 0.0

    def current_response(self) -> str | None:
        """The reply whose audio is playing now (oldest unacknowledged chunk)."""
        if self._outstanding:
            return self._outstanding[0].response_id
        return self.open_response

    def forget(self, response_id: str) -> None:
        self._responses.pop(response_id, None)


def cut_text(text: str, heard_ms: float, total_ms: float) -> str:
    """The part of ``text`` the caller heard, by share of audio played, at a word boundary.

    Speech rate within one reply is close enough to even that the share of
    audio heard is a fair share of its characters; a word counts only when
    the cut falls past its middle.
    """
    if total_ms <= 0 or heard_ms <= 0 or not text:
        return ""
    if heard_ms >= total_ms:
        return text
    pos = len(text) * heard_ms / total_ms
    out: list[str] = []
    idx = 0
    for word in text.split():
        start = text.index(word, idx)
        idx = start + len(word)
        if start + len(word) / 2 <= pos:
            out.append(word)
        else:
            break
    return " ".join(out)
