"""Speech-to-speech engines: one provider WebSocket per call, behind the ``Brain`` seam."""

from patter_core.engines.echo import EchoEngine
from patter_core.engines.elevenlabs_convai import ElevenLabsConvAI
from patter_core.engines.errors import EngineError
from patter_core.engines.openai_realtime import OpenAIRealtime

__all__ = ["EchoEngine", "ElevenLabsConvAI", "EngineError", "OpenAIRealtime"]
