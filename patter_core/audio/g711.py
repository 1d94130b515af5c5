"""G.711 µ-law and A-law with numpy look-up tables.

The tables are computed once at import from the G.711 segment rules, with
the same rounding as CPython's ``audioop`` (which Python 3.13 removed), so
encoding a frame is one ``take`` and decoding is one index.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159

PcmInput = bytes | bytearray | memoryview | npt.NDArray[np.int16]


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit magnitude domain
    negative = pcm < 0
    mag = np.minimum(np.where(negative, -pcm, pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")
    code = np.where(
        seg >= 8,
        0x7F,
        (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F),
    )
    mask = np.where(negative, 0x7F, 0xFF)
    # Index by the int16 bit pattern read as uint16: 0..32767 then -32768..-1.
    return np.roll((code ^ mask).astype(np.uint8), 32768)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit domain
    negative = pcm < 0
    mag = np.where(negative, -pcm - 1, pcm)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    segc = np.minimum(seg, 7)
    quant = np.where(segc < 2, (mag >> 1) & 0x0F, (mag >> segc) & 0x0F)
    code = np.where(seg >= 8, 0x7F, (segc << 4) | quant)
    mask = np.where(negative, 0x55, 0xD5)
    return np.roll((code ^ mask).astype(np.uint8), 32768)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (a & 0x70) >> 4
    t = (a & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _build_ulaw_encode()
ULAW_DECODE = _build_ulaw_decode()
ALAW_ENCODE = _build_alaw_encode()
ALAW_DECODE = _build_alaw_decode()


def _as_index(pcm: PcmInput) -> npt.NDArray[np.uint16]:
    if isinstance(pcm, np.ndarray):
        return pcm.astype(np.int16, copy=False).view(np.uint16)
    return np.frombuffer(pcm, dtype="<u2")


def ulaw_encode(pcm: PcmInput) -> bytes:
    """PCM16 LE bytes (or an int16 array) → µ-law bytes."""
    return ULAW_ENCODE.take(_as_index(pcm)).tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    return ULAW_DECODE.take(np.frombuffer(data, dtype=np.uint8))


def alaw_encode(pcm: PcmInput) -> bytes:
    return ALAW_ENCODE.take(_as_index(pcm)).tobytes()


def alaw_decode(data: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    return ALAW_DECODE.take(np.frombuffer(data, dtype=np.uint8))
