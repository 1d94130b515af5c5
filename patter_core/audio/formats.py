"""Wire formats that meet at an edge (carrier, engine, STT, TTS)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Encoding(StrEnum):
    PCM16 = "pcm16"  # signed 16-bit little-endian (the session's own format)
    L16 = "l16"  # signed 16-bit big-endian, as RFC 3551 puts L16 on the wire
    MULAW = "mulaw"
    ALAW = "alaw"


@dataclass(frozen=True, slots=True)
class AudioFormat:
    encoding: Encoding
    sample_rate: int
    # Worked out once: the per-frame path asks for it several times a frame.
    bytes_per_sample: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wide = self.encoding not in (Encoding.MULAW, Encoding.ALAW)
        object.__setattr__(self, "bytes_per_sample", 2 if wide else 1)

    def bytes_for_ms(self, ms: int) -> int:
        return self.sample_rate * ms // 1000 * self.bytes_per_sample

    def __str__(self) -> str:
        return f"{self.encoding.value}/{self.sample_rate}"


MULAW_8K = AudioFormat(Encoding.MULAW, 8000)
ALAW_8K = AudioFormat(Encoding.ALAW, 8000)
L16_16K = AudioFormat(Encoding.L16, 16000)
PCM16_8K = AudioFormat(Encoding.PCM16, 8000)
PCM16_16K = AudioFormat(Encoding.PCM16, 16000)
PCM16_24K = AudioFormat(Encoding.PCM16, 24000)
SESSION_FORMAT = PCM16_16K
