"""Converters at the edges of a call: one per direction per edge.

A ``Transcoder`` decodes, resamples and encodes exactly once, skipping every
step that is the identity; when both sides speak the same format the bytes
pass through untouched (the same object), so a µ-law carrier talking to a
µ-law engine costs nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from patter_core.audio import g711
from patter_core.audio.formats import AudioFormat, Encoding
from patter_core.audio.resample import StreamResampler


def decode(data: bytes, encoding: Encoding) -> npt.NDArray[np.int16]:
    """Wire bytes → int16 samples (a whole number of samples is assumed)."""
    if encoding is Encoding.PCM16:
        return np.frombuffer(data, dtype="<i2")
    if encoding is Encoding.MULAW:
        return g711.ulaw_decode(data)
    if encoding is Encoding.ALAW:
        return g711.alaw_decode(data)
    return np.frombuffer(data, dtype=">i2").astype(np.int16)


def encode(samples: npt.NDArray[np.int16], encoding: Encoding) -> bytes:
    if encoding is Encoding.PCM16:
        return samples.astype("<i2", copy=False).tobytes()
    if encoding is Encoding.MULAW:
        return g711.ulaw_encode(samples)
    if encoding is Encoding.ALAW:
        return g711.alaw_encode(samples)
    return samples.astype(">i2").tobytes()


# What the resampler's kernel reads and writes directly: native int16 (None)
# or a G.711 table. Big-endian L16 goes through the general path.
_PCM_NATIVE = sys.byteorder == "little"
_NATIVE_IN: dict[Encoding, bytes | None] = {
    Encoding.MULAW: g711.ULAW_DECODE.astype(np.float32).tobytes(),
    Encoding.ALAW: g711.ALAW_DECODE.astype(np.float32).tobytes(),
}
_NATIVE_OUT: dict[Encoding, bytes | None] = {
    Encoding.MULAW: g711.ULAW_ENCODE.tobytes(),
    Encoding.ALAW: g711.ALAW_ENCODE.tobytes(),
}
if _PCM_NATIVE:
    _NATIVE_IN[Encoding.PCM16] = None
    _NATIVE_OUT[Encoding.PCM16] = None


class Transcoder:
    """Stateful ``src`` → ``dst`` converter for one stream direction.

    Everything that depends only on the two formats is decided here, once,
    because ``convert`` runs 50 times a second per call.
    """

    __slots__ = ("_carry", "_process", "_resampler", "_same", "_wide_src", "dst", "src")

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        self.src = src
        self.dst = dst
        self._same = src == dst
        self._wide_src = src.bytes_per_sample == 2
        self._resampler = StreamResampler(src.sample_rate, dst.sample_rate)
        self._process = self._pipeline(src.encoding, dst.encoding)
        self._carry = b""  # an odd byte of a 16-bit sample split across chunks

    def _pipeline(self, src: Encoding, dst: Encoding) -> Callable[[bytes], bytes]:
        resampler = self._resampler
        if not resampler.passthrough and src in _NATIVE_IN and dst in _NATIVE_OUT:
            # The call's hot path: decode, filter and encode in one pass.
            src_table, dst_table = _NATIVE_IN[src], _NATIVE_OUT[dst]

            def fused(data: bytes) -> bytes:
                return resampler.run(data, src_table, dst_table)

            return fused
        resample = None if resampler.passthrough else resampler.process

        def general(data: bytes) -> bytes:
            samples = decode(data, src)
            if resample is not None:
                samples = resample(samples)
            return encode(samples, dst)

        return general

    @property
    def passthrough(self) -> bool:
        return self._same

    def convert(self, data: bytes) -> bytes:
        if self._same:
            return data
        if self._wide_src:
            if self._carry:
                data = self._carry + data
                self._carry = b""
            if len(data) & 1:
                data, self._carry = data[:-1], data[-1:]
        if not data:
            return b""
        return self._process(data)

    def flush(self) -> bytes:
        """Drain the resampler's tail at the end of a stream."""
        if self._same:
            return b""
        self._carry = b""
        tail = self._resampler.flush()
        return encode(tail, self.dst.encoding) if len(tail) else b""


class FrameSlicer:
    """Cuts a byte stream into exact ``ms`` chunks, keeping the remainder for later."""

    __slots__ = ("_buf", "frame_bytes")

    def __init__(self, fmt: AudioFormat, ms: int = 20) -> None:
        self.frame_bytes = fmt.bytes_for_ms(ms)
        if self.frame_bytes <= 0:
            raise ValueError(f"{ms} ms of {fmt} is not a whole number of bytes")
        self._buf = bytearray()

    def whole(self, data: bytes) -> bytes:
        """Every whole frame so far, as one piece (empty if there is none yet)."""
        if not self._buf and len(data) % self.frame_bytes == 0:
            return data  # the usual case on the per-frame path: nothing to cut or copy
        self._buf += data
        n = len(self._buf) // self.frame_bytes * self.frame_bytes
        chunk = bytes(self._buf[:n])
        del self._buf[:n]
        return chunk

    def push(self, data: bytes) -> list[bytes]:
        chunk, size = self.whole(data), self.frame_bytes
        return [chunk[i : i + size] for i in range(0, len(chunk), size)]

    def remainder(self) -> bytes:
        """What is left (less than one frame); clears it."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    def __len__(self) -> int:
        return len(self._buf)


__all__ = ["FrameSlicer", "Transcoder", "decode", "encode"]
