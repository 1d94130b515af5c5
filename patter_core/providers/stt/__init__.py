"""Speech-to-text providers, one module per wire protocol."""

from patter_core.providers.stt.deepgram import DeepgramSTT
from patter_core.providers.stt.local import LocalSTT

__all__ = ["DeepgramSTT", "LocalSTT"]
