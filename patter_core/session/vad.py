"""Caller voice activity from WebRTC's VAD, cheap enough for hundreds of calls per core.

Carrier audio is decoded for the VAD at its own rate (µ-law 8 kHz through a
256-entry table, no resampling: webrtcvad accepts 8 kHz). A whole frame is
decoded and its energy measured in one call to the C kernel. One ``Vad`` per
call costs a few hundred bytes and about 2 µs per 20 ms frame (11 µs with the
numpy fallback; ``bench.vad``), so no shared pool or thread is needed.
``make_detector`` picks it or Silero. A small energy floor rejects line hiss
the VAD's own noise model has not adapted to yet.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
import webrtcvad

from patter_core.audio import g711
from patter_core.audio.formats import AudioFormat, Encoding

try:
    from patter_core.audio import _fir  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: numpy does the same work
    _fir = None

if TYPE_CHECKING:
    from patter_core.session.config import AgentConfig

VAD_RATES = (8000, 16000, 32000, 48000)
FRAME_MS = 20


_ULAW = g711.ULAW_DECODE
_ALAW = g711.ALAW_DECODE
# The C kernel's decode tables: the same values, as float32.
_LUTS: dict[Encoding, bytes] = {
    Encoding.MULAW: _ULAW.astype(np.float32).tobytes(),
    Encoding.ALAW: _ALAW.astype(np.float32).tobytes(),
}


def to_pcm16(payload: bytes, fmt: AudioFormat) -> npt.NDArray[np.int16]:
    """Linear samples of wire audio, at the wire's own rate."""
    if fmt.encoding is Encoding.MULAW:
        return _ULAW[np.frombuffer(payload, dtype=np.uint8)]
    if fmt.encoding is Encoding.ALAW:
        return _ALAW[np.frombuffer(payload, dtype=np.uint8)]
    usable = len(payload) - len(payload) % 2
    dtype = ">i2" if fmt.encoding is Encoding.L16 else "<i2"
    return np.frombuffer(payload[:usable], dtype=dtype).astype(np.int16)


@dataclass(slots=True)
class VadFrame:
    """One 20 ms decision; ``t_ms`` is the frame's start on the caller-audio clock.

    Not frozen: one per frame (see ``LegAudio``). Treat it as read-only.
    """

    t_ms: float
    speech: bool


class VoiceDetector:
    """Cuts wire audio into 20 ms frames and classifies each one."""

    def __init__(self, fmt: AudioFormat, *, aggressiveness: int = 2, floor_dbfs: float = -50.0):
        if fmt.sample_rate not in VAD_RATES:
            raise ValueError(
                f"VAD needs audio at one of {VAD_RATES} Hz; the carrier sends {fmt.sample_rate} Hz"
            )
        self._fmt = fmt
        self._vad = webrtcvad.Vad(aggressiveness)
        self._frame = fmt.sample_rate * FRAME_MS // 1000
        self._frame_bytes = fmt.bytes_for_ms(FRAME_MS)
        self._lut = _LUTS.get(fmt.encoding)
        # One C call per whole frame decodes it and measures its energy (G.711, or
        # PCM16 already in this machine's byte order); numpy otherwise.
        native_pcm = fmt.encoding is Encoding.PCM16 and sys.byteorder == "little"
        self._native = _fir is not None and (self._lut is not None or native_pcm)
        self._pending = np.zeros(0, dtype=np.int16)
        self._floor = (10 ** (floor_dbfs / 20) * 32768) ** 2
        self._t_ms: float | None = None

    def feed(self, payload: bytes, timestamp_ms: float | None = None) -> list[VadFrame]:
        if self._t_ms is None:
            self._t_ms = timestamp_ms or 0.0
        if self._native and not len(self._pending) and len(payload) == self._frame_bytes:
            pcm, energy = _fir.pcm16(payload, self._lut)  # the usual case: one whole frame
            return [self._decide(pcm, energy)]
        samples = to_pcm16(payload, self._fmt)
        n = self._frame
        if not len(self._pending) and len(samples) == n:  # the usual case: one whole frame
            return [self._classify(samples)]
        buf = np.concatenate((self._pending, samples)) if len(self._pending) else samples
        out: list[VadFrame] = []
        usable = len(buf) - len(buf) % n
        for i in range(0, usable, n):
            out.append(self._classify(buf[i : i + n]))
        self._pending = buf[usable:].copy()
        return out

    def _classify(self, frame: npt.NDArray[np.int16]) -> VadFrame:
        wide = frame.astype(np.float64)
        return self._decide(frame.tobytes(), float(wide.dot(wide)) / len(frame))

    def _decide(self, pcm: bytes, energy: float) -> VadFrame:
        speech = energy >= self._floor and self._vad.is_speech(pcm, self._fmt.sample_rate)
        assert self._t_ms is not None
        out = VadFrame(self._t_ms, speech)
        self._t_ms += FRAME_MS
        return out

    async def afeed(self, payload: bytes, timestamp_ms: float | None = None) -> list[VadFrame]:
        """``feed`` behind the interface Silero needs; webrtcvad is cheap enough inline."""
        return self.feed(payload, timestamp_ms)


class CallerVad(Protocol):
    async def afeed(self, payload: bytes, timestamp_ms: float | None = None) -> list[VadFrame]: ...


def make_detector(fmt: AudioFormat, agent: AgentConfig) -> CallerVad:
    """The agent's chosen VAD for one call (Silero imports only when asked for)."""
    if agent.vad == "silero":
        from patter_core.session.silero import SileroDetector

        return SileroDetector(fmt)
    return VoiceDetector(fmt, aggressiveness=agent.vad_aggressiveness)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    t_ms: float


@dataclass(frozen=True, slots=True)
class SpeechSustained:
    """Voiced time in the current segment reached the threshold."""

    onset_ms: float
    t_ms: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    onset_ms: float
    t_ms: float
    voiced_ms: float


SpeechEvent = SpeechStarted | SpeechSustained | SpeechEnded


class SpeechTracker:
    """Turns frame decisions into speech segments.

    A segment opens on a voiced frame and closes after ``hangover_ms`` of
    unvoiced frames, so a slow speaker's short pauses (digits read one by
    one) stay in one segment and their voiced time adds up. ``sustained``
    fires once per segment when voiced time reaches ``threshold_ms``.
    """

    def __init__(self, threshold_ms: float = 300.0, hangover_ms: float = 500.0) -> None:
        self.threshold_ms = threshold_ms
        self.hangover_ms = hangover_ms
        self.onset_ms: float | None = None
        self.voiced_ms = 0.0
        self._silent_ms = 0.0
        self._sustained = False

    @property
    def in_speech(self) -> bool:
        return self.onset_ms is not None

    @property
    def talking_now(self) -> bool:
        """Voiced within the last few frames (not just inside the hangover)."""
        return self.onset_ms is not None and self._silent_ms < 3 * FRAME_MS

    def update(self, frame: VadFrame) -> list[SpeechEvent]:
        events: list[SpeechEvent] = []
        if frame.speech:
            if self.onset_ms is None:
                self.onset_ms = frame.t_ms
                self.voiced_ms = 0.0
                self._sustained = False
                events.append(SpeechStarted(frame.t_ms))
            self.voiced_ms += FRAME_MS
            self._silent_ms = 0.0
            if not self._sustained and self.voiced_ms >= self.threshold_ms:
                self._sustained = True
                events.append(SpeechSustained(self.onset_ms, frame.t_ms + FRAME_MS))
        elif self.onset_ms is not None:
            self._silent_ms += FRAME_MS
            if self._silent_ms >= self.hangover_ms:
                end = frame.t_ms + FRAME_MS - self._silent_ms
                events.append(SpeechEnded(self.onset_ms, end, self.voiced_ms))
                self.onset_ms = None
                self._silent_ms = 0.0
        return events
