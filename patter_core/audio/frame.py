"""The unit of audio that moves inside a call."""

from __future__ import annotations

from dataclasses import dataclass

SESSION_RATE = 16000
FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """PCM16 mono little-endian at the session rate; ``timestamp_ms`` is call-relative.

    Frames are normally 20 ms (640 bytes at 16 kHz) but any whole number of
    samples is allowed, because providers deliver audio in their own chunk sizes.
    """

    pcm: bytes
    timestamp_ms: float = 0.0
    sample_rate: int = SESSION_RATE

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration_ms(self) -> float:
        return self.samples * 1000.0 / self.sample_rate
