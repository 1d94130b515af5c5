"""Patter: AI agents that answer and place real phone calls, self-hosted.

from patter_core import Patter, Twilio, EchoEngine

phone = Patter(carrier=Twilio(), phone_number="+15550001234", webhook_url="agent.example.com")
agent = phone.agent(engine=EchoEngine())
await phone.serve(agent)
"""

from patter_core.agent import Agent
from patter_core.carriers import telnyx, twilio
from patter_core.carriers.telnyx import Telnyx
from patter_core.carriers.twilio import Twilio
from patter_core.engines import EchoEngine, ElevenLabsConvAI, OpenAIRealtime
from patter_core.guardrails import Guardrail, guardrail
from patter_core.patter import Patter
from patter_core.providers.llm import (
    AnthropicLLM,
    CerebrasLLM,
    GoogleLLM,
    GroqLLM,
    OpenAICompatibleLLM,
    OpenAILLM,
)
from patter_core.providers.stt import (
    AssemblyAISTT,
    CartesiaSTT,
    DeepgramSTT,
    LocalSTT,
    SonioxSTT,
    SpeechmaticsSTT,
    WhisperSTT,
)
from patter_core.providers.tts import (
    LMNTTTS,
    CartesiaTTS,
    ElevenLabsTTS,
    LocalTTS,
    OpenAITTS,
    RimeTTS,
)
from patter_core.server.app import AtCapacity
from patter_core.session.config import MachineDetectionResult
from patter_core.tools import Tool, tool
from patter_core.tunnel import CloudflareTunnel, Static

__version__ = "0.1.0"

# The seeds import every provider from the package root (``from getpatter import
# DeepgramSTT``); the submodules stay the home of each.
__all__ = [
    "LMNTTTS",
    "Agent",
    "AnthropicLLM",
    "AssemblyAISTT",
    "AtCapacity",
    "CartesiaSTT",
    "CartesiaTTS",
    "CerebrasLLM",
    "CloudflareTunnel",
    "DeepgramSTT",
    "EchoEngine",
    "ElevenLabsConvAI",
    "ElevenLabsTTS",
    "GoogleLLM",
    "GroqLLM",
    "Guardrail",
    "LocalSTT",
    "LocalTTS",
    "MachineDetectionResult",
    "OpenAICompatibleLLM",
    "OpenAILLM",
    "OpenAIRealtime",
    "OpenAITTS",
    "Patter",
    "RimeTTS",
    "SonioxSTT",
    "SpeechmaticsSTT",
    "Static",
    "Telnyx",
    "Tool",
    "Twilio",
    "WhisperSTT",
    "guardrail",
    "telnyx",
    "tool",
    "twilio",
]
