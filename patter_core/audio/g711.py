"""G.711 µ-law and A-law codecs driven by look-up tables.

Carrier legs move 8-bit G.711 at 50 frames a second per call, so the codec runs
far more often than anything else in the audio path. Every mapping is computed
once at import from the G.711 segment rules (the same arithmetic as the classic
Sun reference code that CPython's ``audioop`` used, so results are bit-exact with
it) and afterwards each conversion is a single ``numpy.take``. ``audioop`` itself
is never called: it is deprecated and gone in Python 3.13.

Encode tables have 65,536 entries indexed by the 16-bit sample's bit pattern.
Because that order puts negative samples in the upper half, the tables can be
indexed with int16 arrays directly: ``take`` wraps negative indices.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ALAW_TO_ULAW",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "ULAW_TO_ALAW",
    "alaw_decode",
    "alaw_decode_bytes",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_decode_bytes",
    "ulaw_encode",
]

Int16Array = npt.NDArray[np.int16]
UInt8Array = npt.NDArray[np.uint8]

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # largest 14-bit magnitude that still fits once the bias is added
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _all_samples() -> npt.NDArray[np.int32]:
    """Every int16 value, ordered by its unsigned bit pattern (0, 1, ..., -2, -1)."""
    return np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)


def _build_ulaw_encode() -> UInt8Array:
    x = _all_samples() >> 2  # µ-law quantises 14-bit magnitudes
    negative = x < 0
    magnitude = np.minimum(np.where(negative, -x, x), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    segment = np.searchsorted(_ULAW_SEG_END, magnitude, side="left")
    shift = np.minimum(segment, 7) + 1
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    mask = np.where(negative, 0x7F, 0xFF)  # µ-law transmits every bit inverted
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> UInt8Array:
    x = _all_samples() >> 3  # A-law quantises 13-bit magnitudes
    negative = x < 0
    magnitude = np.where(negative, -x - 1, x)
    segment = np.searchsorted(_ALAW_SEG_END, magnitude, side="left")
    shift = np.where(segment < 2, 1, np.minimum(segment, 7))
    code = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)
    mask = np.where(negative, 0x55, 0xD5)  # sign bit plus even-bit inversion
    return (code ^ mask).astype(np.uint8)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(segment == 0, t + 8, (t + 0x108) << np.maximum(segment - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE_TABLE: UInt8Array = _build_ulaw_encode()
ULAW_DECODE_TABLE: Int16Array = _build_ulaw_decode()
ALAW_ENCODE_TABLE: UInt8Array = _build_alaw_encode()
ALAW_DECODE_TABLE: Int16Array = _build_alaw_decode()
for _table in (ULAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_ENCODE_TABLE, ALAW_DECODE_TABLE):
    _table.flags.writeable = False

ULAW_TO_ALAW: bytes = ALAW_ENCODE_TABLE.take(ULAW_DECODE_TABLE).tobytes()
"""``bytes.translate`` table: µ-law code to the A-law code of the same linear value."""
ALAW_TO_ULAW: bytes = ULAW_ENCODE_TABLE.take(ALAW_DECODE_TABLE).tobytes()
"""``bytes.translate`` table: A-law code to the µ-law code of the same linear value."""

_PCM16_LE = np.dtype("<i2")


def _as_samples(pcm: bytes | np.ndarray) -> np.ndarray:
    if isinstance(pcm, np.ndarray):
        if pcm.dtype.kind != "i" or pcm.dtype.itemsize != 2:
            raise TypeError(f"expected an int16 array, got {pcm.dtype}")
        return pcm
    if len(pcm) % 2:
        raise ValueError("PCM16 input must be a whole number of 2-byte samples")
    return np.frombuffer(pcm, dtype=_PCM16_LE)


def ulaw_encode(pcm: bytes | np.ndarray) -> bytes:
    """PCM16 little-endian bytes (or an int16 array) to µ-law bytes."""
    return ULAW_ENCODE_TABLE.take(_as_samples(pcm)).tobytes()


def alaw_encode(pcm: bytes | np.ndarray) -> bytes:
    """PCM16 little-endian bytes (or an int16 array) to A-law bytes."""
    return ALAW_ENCODE_TABLE.take(_as_samples(pcm)).tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    """µ-law bytes to a new int16 array."""
    return ULAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8))


def alaw_decode(data: bytes) -> Int16Array:
    """A-law bytes to a new int16 array."""
    return ALAW_DECODE_TABLE.take(np.frombuffer(data, dtype=np.uint8))


def ulaw_decode_bytes(data: bytes) -> bytes:
    """µ-law bytes to PCM16 little-endian bytes."""
    return ulaw_decode(data).astype(_PCM16_LE, copy=False).tobytes()


def alaw_decode_bytes(data: bytes) -> bytes:
    """A-law bytes to PCM16 little-endian bytes."""
    return alaw_decode(data).astype(_PCM16_LE, copy=False).tobytes()
