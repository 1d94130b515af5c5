"""Text-to-speech providers, one module per wire protocol."""

from patter_core.providers.tts.local import LocalTTS

__all__ = ["LocalTTS"]
