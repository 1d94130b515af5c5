"""Anthropic Messages streaming.

Text comes as ``text_delta`` in text blocks; a tool call is a ``tool_use``
block whose input JSON arrives as ``input_json_delta`` pieces. Tool results go
back as ``tool_result`` blocks inside a user turn.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from patter_core.brain import ToolSpec
from patter_core.providers.base import (
    LLMChunk,
    Message,
    ProviderError,
    TextDelta,
    ToolCallPart,
    ToolCalls,
    Usage,
)
from patter_core.providers.keys import resolve_key
from patter_core.providers.llm.streaming import (
    StreamSettings,
    error_text,
    open_sse,
    parse_json,
    with_retries,
)

API_VERSION = "2023-06-01"
_RETRYABLE_ERRORS = {"overloaded_error", "api_error", "rate_limit_error"}


class AnthropicLLM:
    name = "anthropic"
    env_var = "ANTHROPIC_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        model: str = "claude-3-5-haiku-latest",
        *,
        temperature: float | None = None,
        base_url: str | None = None,
        max_tokens: int = 1024,
        settings: StreamSettings | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model
        self.temperature = temperature
        self.base_url = (base_url or "https://api.anthropic.com").rstrip("/")
        self.max_tokens = max_tokens
        self.settings = settings or StreamSettings()

    def __repr__(self) -> str:
        return f"AnthropicLLM(model={self.model!r}, base_url={self.base_url!r})"

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        system, turns = wire_messages(messages)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": turns,
            "stream": True,
        }
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in tools
            ]
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return with_retries(self.name, lambda: self._attempt(body), self.settings)

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[LLMChunk, None]:
        headers = {
            "x-api-key": self._key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }
        blocks: dict[int, dict[str, Any]] = {}
        input_tokens = cached = output_tokens = 0
        stopped = False
        events = open_sse(
            self.name,
            f"{self.base_url}/v1/messages",
            headers=headers,
            body=body,
            secret=self._key,
            settings=self.settings,
        )
        async for event in events:
            data = parse_json(self.name, event.data)
            kind = data.get("type", event.event)
            if kind == "message_start":
                usage = (data.get("message") or {}).get("usage") or {}
                cached = int(usage.get("cache_read_input_tokens") or 0)
                input_tokens = (
                    int(usage.get("input_tokens") or 0)
                    + cached
                    + int(usage.get("cache_creation_input_tokens") or 0)
                )
                output_tokens = int(usage.get("output_tokens") or 0)
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use":
                    blocks[int(data.get("index", len(blocks)))] = {
                        "id": block.get("id", ""),
                        "name": block.get("name", ""),
                        "input": block.get("input") or {},
                        "json": [],
                    }
                elif block.get("type") == "text" and block.get("text"):
                    yield TextDelta(block["text"])
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield TextDelta(delta["text"])
                elif delta.get("type") == "input_json_delta":
                    slot = blocks.get(int(data.get("index", -1)))
                    if slot is not None:
                        slot["json"].append(delta.get("partial_json") or "")
            elif kind == "message_delta":
                usage = data.get("usage") or {}
                if "output_tokens" in usage:
                    output_tokens = int(usage["output_tokens"] or 0)
            elif kind == "message_stop":
                stopped = True
                break
            elif kind == "error":
                err = data.get("error") or {}
                raise ProviderError(
                    self.name,
                    error_text(err, self._key),
                    retryable=isinstance(err, dict) and err.get("type") in _RETRYABLE_ERRORS,
                )
        if not stopped:
            raise ProviderError(self.name, "stream ended before message_stop", retryable=True)
        if blocks:
            yield ToolCalls(
                [
                    ToolCallPart(
                        id=b["id"],
                        name=b["name"],
                        arguments="".join(b["json"]) or json.dumps(b["input"]),
                    )
                    for _, b in sorted(blocks.items())
                ]
            )
        yield Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached)


def wire_messages(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Our history as Anthropic wants it: one system string, alternating turns."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        content: list[dict[str, Any]] = []
        if m.role == "tool":
            content.append(
                {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            )
        else:
            if m.content:
                content.append({"type": "text", "text": m.content})
            for call in m.tool_calls:
                content.append(
                    {"type": "tool_use", "id": call.id, "name": call.name, "input": _args(call)}
                )
        if not content:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(content)
        else:
            turns.append({"role": role, "content": content})
    return system, turns


def _args(call: ToolCallPart) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
