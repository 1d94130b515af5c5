"""Audio core: the session's PCM16 frames and the conversions at each edge."""

from patter_core.audio.formats import (
    ALAW_8K,
    L16_16K,
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    SESSION_FORMAT,
    AudioFormat,
    Encoding,
)
from patter_core.audio.frame import FRAME_MS, SESSION_RATE, AudioFrame

__all__ = [
    "ALAW_8K",
    "FRAME_MS",
    "L16_16K",
    "MULAW_8K",
    "PCM16_8K",
    "PCM16_16K",
    "PCM16_24K",
    "SESSION_FORMAT",
    "SESSION_RATE",
    "AudioFormat",
    "AudioFrame",
    "Encoding",
]
