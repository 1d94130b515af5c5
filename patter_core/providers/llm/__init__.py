"""Streaming LLM providers over HTTP + SSE."""

from patter_core.providers.llm.anthropic import AnthropicLLM
from patter_core.providers.llm.google import GoogleLLM
from patter_core.providers.llm.openai import CerebrasLLM, GroqLLM, OpenAICompatibleLLM, OpenAILLM
from patter_core.providers.llm.streaming import StreamSettings

__all__ = [
    "AnthropicLLM",
    "CerebrasLLM",
    "GoogleLLM",
    "GroqLLM",
    "OpenAICompatibleLLM",
    "OpenAILLM",
    "StreamSettings",
]
