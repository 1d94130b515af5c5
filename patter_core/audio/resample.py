"""Streaming resampling that returns every 20 ms frame's audio at once.

``soxr.ResampleStream`` was the first choice, but measured frame by frame it
hands back audio in bursts of about 1,700 samples (108 ms at 16 kHz): most
20 ms calls return nothing, which adds up to a tenth of a second of delay and
jitter to a phone call. A call needs each frame out as soon as it is in, so
this is a polyphase FIR (Kaiser-windowed sinc, designed once per rate pair)
evaluated as one strided matrix product per frame, with the filter history
carried across frames. soxr stays the quality reference in the tests and
``bench/transcode.py``.

The filter runs in a small C kernel (``_fir.c``, built at install) when it is
there: numpy costs about 0.4 µs per array operation and a frame needs eight,
which alone caps a call's edge below the speed target. Without a compiler the
numpy path below computes the same result.
"""

from __future__ import annotations

from functools import cache
from math import gcd

import numpy as np
import numpy.typing as npt

try:
    from patter_core.audio import _fir  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler
    _fir = None

# The filter passes 85 % of the lower Nyquist frequency (3.4 kHz of 4 kHz:
# the whole telephone band) and stops from 115 % (where 8 kHz → 16 kHz
# puts the first image of 3.4 kHz), with this much attenuation.
PASS_EDGE = 0.85
STOP_EDGE = 1.15
ATTENUATION_DB = 90.0
KAISER_BETA = 0.1102 * (ATTENUATION_DB - 8.7)


def taps_per_phase(up: int, down: int) -> int:
    """Kaiser's length estimate for the transition band, split over ``up`` phases."""
    transition = (STOP_EDGE - PASS_EDGE) * 0.5 / max(up, down)  # of the upsampled rate
    total = (ATTENUATION_DB - 8.0) / (2.285 * 2 * np.pi * transition)
    return int(np.ceil(total / up))


@cache
def _design(up: int, down: int) -> tuple[npt.NDArray[np.float32], int]:
    """One matrix that computes a whole cycle of ``up`` outputs from a window of input.

    Output ``t*up + p`` sits at upsampled position ``(t*up + p) * down``; its
    newest input sample is ``t*down + base[p]``. Column ``p`` holds phase
    ``p``'s taps, shifted so every column reads the same window.
    """
    per_phase = taps_per_phase(up, down)
    n = per_phase * up
    cutoff = 0.5 / max(up, down) * (PASS_EDGE + STOP_EDGE) / 2  # of the upsampled rate
    k = np.arange(n) - n // 2  # centre on a whole sample: a known, integer delay
    proto = 2 * cutoff * np.sinc(2 * cutoff * k) * np.kaiser(n, KAISER_BETA) * up
    bases = [(p * down) // up for p in range(up)]
    span = per_phase + max(bases) - min(bases)
    matrix = np.zeros((span, up), dtype=np.float64)
    for p in range(up):
        phase = (p * down) % up
        taps = proto[phase::up][:per_phase]  # taps[i] multiplies input (newest - i)
        shift = max(bases) - bases[p]
        # Window row r holds input (newest_in_window - (span - 1 - r)).
        for i, tap in enumerate(taps):
            matrix[span - 1 - shift - i, p] = tap
    return matrix.astype(np.float32), span


class StreamResampler:
    """int16 mono in, int16 mono out, ``len(out) == len(in) * out_rate / in_rate`` on average.

    Output trails input by half the filter (about 3 ms for 8 kHz ↔ 16 kHz),
    a fixed delay (``delay_s``) that does not grow however long the call.
    """

    __slots__ = (
        "_down",
        "_hist",
        "_matrix",
        "_span",
        "_state",
        "_taps",
        "_up",
        "in_rate",
        "out_rate",
    )

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        g = gcd(in_rate, out_rate)
        self._up, self._down = out_rate // g, in_rate // g
        self._matrix, self._span = _design(self._up, self._down)
        # Everything not yet consumed, starting with the filter's zero history.
        self._hist = np.zeros(self._span - 1, dtype=np.float32)
        # The same history for the C kernel, and its phase-major taps.
        self._state = bytearray(self._hist.tobytes())
        self._taps = np.ascontiguousarray(self._matrix.T).tobytes()

    @staticmethod
    def accelerated() -> bool:
        """Whether the C kernel is in use (else numpy, same output, slower)."""
        return _fir is not None

    def run(
        self,
        data: bytes | memoryview | npt.NDArray[np.int16],
        src_table: bytes | None = None,
        dst_table: bytes | None = None,
    ) -> bytes:
        """Bytes in, bytes out, the decode and encode steps folded into the filter.

        ``data`` is native-order int16, or uint8 codes decoded by ``src_table``
        (256 float32); the result is int16, or codes from ``dst_table``
        (65,536 uint8, indexed by the int16 bit pattern). This is the call's
        per-frame path: one C call when the kernel is built.
        """
        if _fir is not None:
            out: bytes = _fir.run(
                self._state, self._taps, self._up, self._down, data, src_table, dst_table
            )
            return out
        if src_table is None:
            samples = np.frombuffer(data, np.int16)
        else:
            lut = np.frombuffer(src_table, np.float32)
            samples = lut.take(np.frombuffer(data, np.uint8)).astype(np.int16)
        result = self._numpy(samples)
        if dst_table is None:
            return result.tobytes()
        return np.frombuffer(dst_table, np.uint8).take(result.view(np.uint16)).tobytes()

    @property
    def passthrough(self) -> bool:
        return self.in_rate == self.out_rate

    @property
    def delay_s(self) -> float:
        """How far output trails input, in seconds."""
        if self.passthrough:
            return 0.0
        n = taps_per_phase(self._up, self._down) * self._up
        bases = [(p * self._down) // self._up for p in range(self._up)]
        return (n // 2) / (self.in_rate * self._up) + max(bases) / self.in_rate

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        if self.in_rate == self.out_rate:
            return samples
        if _fir is None:
            return self._numpy(samples)
        return np.frombuffer(self.run(np.ascontiguousarray(samples, dtype=np.int16)), np.int16)

    def _numpy(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        buf = np.concatenate((self._hist, samples.astype(np.float32)))
        cycles = (len(buf) - self._span) // self._down + 1
        if cycles <= 0:
            self._hist = buf
            return np.zeros(0, dtype=np.int16)
        item = buf.itemsize
        windows = np.ndarray((cycles, self._span), np.float32, buf, 0, (self._down * item, item))
        out = np.dot(windows, self._matrix)  # np.dot takes strided views faster than @
        self._hist = buf[cycles * self._down :]
        np.minimum(out, 32767, out=out)  # cheaper than np.clip's dispatch, same result
        np.maximum(out, -32768, out=out)
        result: npt.NDArray[np.int16] = np.rint(out, out=out).astype(np.int16).reshape(-1)
        return result

    def flush(self) -> npt.NDArray[np.int16]:
        """Push the tail still inside the filter out with silence."""
        if self.in_rate == self.out_rate:
            return np.zeros(0, dtype=np.int16)
        pad = np.zeros(self._span // 2, dtype=np.int16)
        return self.process(pad)
