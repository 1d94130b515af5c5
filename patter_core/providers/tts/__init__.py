"""Text-to-speech providers, one module per wire protocol."""

from patter_core.providers.tts.cartesia import CartesiaTTS
from patter_core.providers.tts.elevenlabs import ElevenLabsTTS
from patter_core.providers.tts.lmnt import LMNTTTS
from patter_core.providers.tts.local import LocalTTS
from patter_core.providers.tts.openai import OpenAITTS
from patter_core.providers.tts.rime import RimeTTS

__all__ = ["LMNTTTS", "CartesiaTTS", "ElevenLabsTTS", "LocalTTS", "OpenAITTS", "RimeTTS"]
