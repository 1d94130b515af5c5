"""OpenAI Chat Completions streaming, and the OpenAI-compatible APIs (Groq, Cerebras).

Tool calls arrive as fragments keyed by ``index``; only the first fragment of a
call has its ``id`` and name, the arguments JSON is spread over the rest.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, ClassVar

from patter_core.brain import ToolSpec
from patter_core.providers.base import (
    LLMChunk,
    Message,
    ProviderError,
    TextDelta,
    ToolCallPart,
    ToolCalls,
    Usage,
    tool_schema,
)
from patter_core.providers.keys import resolve_key
from patter_core.providers.llm.streaming import (
    StreamSettings,
    error_text,
    open_sse,
    parse_json,
    with_retries,
)


class OpenAICompatibleLLM:
    """Any server speaking ``POST {base_url}/chat/completions`` with SSE."""

    name: ClassVar[str] = "openai"
    env_var: ClassVar[str] = "OPENAI_API_KEY"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    default_model: ClassVar[str] = "gpt-4o-mini"

    def __init__(
        self,
        api_key: str | None = None,
        model: str | None = None,
        *,
        temperature: float | None = None,
        base_url: str | None = None,
        max_tokens: int | None = None,
        stream_usage: bool = True,
        settings: StreamSettings | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model or self.default_model
        self.temperature = temperature
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.max_tokens = max_tokens
        self.stream_usage = stream_usage
        self.settings = settings or StreamSettings()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(m) for m in messages],
            "stream": True,
        }
        if self.stream_usage:
            body["stream_options"] = {"include_usage": True}
        if tools:
            body["tools"] = [tool_schema(t) for t in tools]
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return with_retries(self.name, lambda: self._attempt(body), self.settings)

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[LLMChunk, None]:
        headers = {"Authorization": f"Bearer {self._key}"}
        calls: dict[int, dict[str, Any]] = {}
        sent_calls = False
        events = open_sse(
            self.name,
            f"{self.base_url}/chat/completions",
            headers=headers,
            body=body,
            secret=self._key,
            settings=self.settings,
        )
        done = False
        async for event in events:
            if event.data.strip() == "[DONE]":
                done = True
                break
            chunk = parse_json(self.name, event.data)
            if "error" in chunk and not chunk.get("choices"):
                raise ProviderError(self.name, error_text(chunk["error"], self._key))
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                text = delta.get("content")
                if isinstance(text, str) and text:
                    yield TextDelta(text)
                for frag in delta.get("tool_calls") or []:
                    _add_fragment(calls, frag)
                if choice.get("finish_reason") and calls and not sent_calls:
                    sent_calls = True
                    yield ToolCalls(_joined(calls))
            usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
            if usage:
                details = usage.get("prompt_tokens_details") or {}
                yield Usage(
                    input_tokens=int(usage.get("prompt_tokens") or 0),
                    output_tokens=int(usage.get("completion_tokens") or 0),
                    cached_tokens=int(details.get("cached_tokens") or 0),
                )
        if not done:
            raise ProviderError(self.name, "stream ended before [DONE]", retryable=True)
        if calls and not sent_calls:
            yield ToolCalls(_joined(calls))


class OpenAILLM(OpenAICompatibleLLM):
    pass


class GroqLLM(OpenAICompatibleLLM):
    name = "groq"
    env_var = "GROQ_API_KEY"
    default_base_url = "https://api.groq.com/openai/v1"
    default_model = "llama-3.3-70b-versatile"


class CerebrasLLM(OpenAICompatibleLLM):
    name = "cerebras"
    env_var = "CEREBRAS_API_KEY"
    default_base_url = "https://api.cerebras.ai/v1"
    default_model = "llama-3.3-70b"


def _wire_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.role == "assistant" and m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments or "{}"},
            }
            for c in m.tool_calls
        ]
    return out


def _add_fragment(calls: dict[int, dict[str, Any]], frag: dict[str, Any]) -> None:
    index = int(frag.get("index", len(calls)))
    slot = calls.setdefault(index, {"id": "", "name": "", "args": []})
    if frag.get("id"):
        slot["id"] = frag["id"]
    fn = frag.get("function") or {}
    if fn.get("name"):
        slot["name"] += fn["name"]
    if fn.get("arguments"):
        slot["args"].append(fn["arguments"])


def _joined(calls: dict[int, dict[str, Any]]) -> list[ToolCallPart]:
    return [
        ToolCallPart(
            id=slot["id"] or f"call_{index}", name=slot["name"], arguments="".join(slot["args"])
        )
        for index, slot in sorted(calls.items())
    ]
