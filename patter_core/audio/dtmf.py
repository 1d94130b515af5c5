"""DTMF digits as in-band audio.

Twilio can only send digits by replacing the call's TwiML, which ends the
media stream the agent is talking on; playing the standard tone pairs into
the stream keeps the agent connected and works the same on every carrier.
"""

from __future__ import annotations

import numpy as np

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.audio.transcode import Transcoder

_LOW = {"1": 697, "2": 697, "3": 697, "A": 697, "4": 770, "5": 770, "6": 770, "B": 770}
_LOW |= {"7": 852, "8": 852, "9": 852, "C": 852, "*": 941, "0": 941, "#": 941, "D": 941}
_HIGH = {"1": 1209, "4": 1209, "7": 1209, "*": 1209, "2": 1336, "5": 1336, "8": 1336, "0": 1336}
_HIGH |= {"3": 1477, "6": 1477, "9": 1477, "#": 1477, "A": 1633, "B": 1633, "C": 1633, "D": 1633}
DIGITS = frozenset(_LOW)


def dtmf_tones(
    digits: str, fmt: AudioFormat = PCM16_16K, tone_ms: int = 100, gap_ms: int = 60
) -> bytes:
    """Audio for ``digits`` (``0-9 * # A-D``; ``w`` is a 500 ms pause) in ``fmt``."""
    rate = PCM16_16K.sample_rate
    pieces: list[np.ndarray] = []
    gap = np.zeros(rate * gap_ms // 1000)
    for ch in digits.upper():
        if ch == "W":
            pieces.append(np.zeros(rate // 2))
            continue
        if ch not in DIGITS:
            raise ValueError(f"not a DTMF digit: {ch!r}")
        t = np.arange(rate * tone_ms // 1000) / rate
        pair = np.sin(2 * np.pi * _LOW[ch] * t) + np.sin(2 * np.pi * _HIGH[ch] * t)
        pieces += [pair * 7000, gap]
    pcm = np.concatenate(pieces).astype(np.int16) if pieces else np.zeros(0, np.int16)
    converter = Transcoder(PCM16_16K, fmt)
    return converter.convert(pcm.tobytes()) + converter.flush()
