"""Speech-to-text providers, one module per wire protocol."""

from patter_core.providers.stt.assemblyai import AssemblyAISTT
from patter_core.providers.stt.cartesia import CartesiaSTT
from patter_core.providers.stt.deepgram import DeepgramSTT
from patter_core.providers.stt.local import LocalSTT
from patter_core.providers.stt.soniox import SonioxSTT
from patter_core.providers.stt.speechmatics import SpeechmaticsSTT
from patter_core.providers.stt.whisper import WhisperSTT

__all__ = [
    "AssemblyAISTT",
    "CartesiaSTT",
    "DeepgramSTT",
    "LocalSTT",
    "SonioxSTT",
    "SpeechmaticsSTT",
    "WhisperSTT",
]
