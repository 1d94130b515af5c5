"""Text-to-speech providers, one module per wire protocol."""

from patter_core.providers.tts.elevenlabs import ElevenLabsTTS
from patter_core.providers.tts.local import LocalTTS
from patter_core.providers.tts.openai import OpenAITTS

__all__ = ["ElevenLabsTTS", "LocalTTS", "OpenAITTS"]
