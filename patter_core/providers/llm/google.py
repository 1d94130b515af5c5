"""Google Gemini ``streamGenerateContent`` with ``alt=sse``.

Each event is a whole ``GenerateContentResponse``; a function call arrives in
one piece. Gemini may omit call ids, so we make our own and keep them off the
wire (a function response is matched by name).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from itertools import count
from typing import Any
from urllib.parse import quote

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

_OWN_ID = "gemini-call-"
_ids = count(1)


class GoogleLLM:
    name = "google"
    env_var = "GOOGLE_API_KEY"

    def __init__(
        self,
        api_key: str | None = None,
        model: str = "gemini-2.0-flash",
        *,
        temperature: float | None = None,
        base_url: str | None = None,
        max_tokens: int | None = None,
        settings: StreamSettings | None = None,
    ) -> None:
        self._key = resolve_key(api_key, self.env_var, self.name)
        self.model = model
        self.temperature = temperature
        self.base_url = (base_url or "https://generativelanguage.googleapis.com").rstrip("/")
        self.max_tokens = max_tokens
        self.settings = settings or StreamSettings()

    def __repr__(self) -> str:
        return f"GoogleLLM(model={self.model!r}, base_url={self.base_url!r})"

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LLMChunk]:
        system, contents = wire_contents(messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if tools:
            body["tools"] = [
                {
                    "functionDeclarations": [
                        {"name": t.name, "description": t.description, "parameters": t.parameters}
                        for t in tools
                    ]
                }
            ]
        config: dict[str, Any] = {}
        if self.temperature is not None:
            config["temperature"] = self.temperature
        if self.max_tokens is not None:
            config["maxOutputTokens"] = self.max_tokens
        if config:
            body["generationConfig"] = config
        return with_retries(self.name, lambda: self._attempt(body), self.settings)

    async def _attempt(self, body: dict[str, Any]) -> AsyncGenerator[LLMChunk, None]:
        url = f"{self.base_url}/v1beta/models/{quote(self.model)}:streamGenerateContent?alt=sse"
        calls: list[ToolCallPart] = []
        usage = Usage()
        events = open_sse(
            self.name,
            url,
            headers={"x-goog-api-key": self._key},
            body=body,
            secret=self._key,
            settings=self.settings,
        )
        async for event in events:
            data = parse_json(self.name, event.data)
            if "error" in data:
                err = data["error"]
                status = err.get("code") if isinstance(err, dict) else None
                raise ProviderError(
                    self.name,
                    error_text(err, self._key),
                    status=status if isinstance(status, int) else None,
                    retryable=status in (429, 500, 503),
                )
            for cand in (data.get("candidates") or [])[:1]:
                for part in (cand.get("content") or {}).get("parts") or []:
                    if part.get("thought"):
                        continue
                    if isinstance(part.get("text"), str) and part["text"]:
                        yield TextDelta(part["text"])
                    call = part.get("functionCall")
                    if isinstance(call, dict):
                        calls.append(
                            ToolCallPart(
                                id=str(call.get("id") or f"{_OWN_ID}{next(_ids)}"),
                                name=str(call.get("name", "")),
                                arguments=json.dumps(call.get("args") or {}),
                            )
                        )
            meta = data.get("usageMetadata")
            if isinstance(meta, dict):
                usage = Usage(
                    input_tokens=int(meta.get("promptTokenCount") or 0),
                    output_tokens=int(meta.get("candidatesTokenCount") or 0),
                    cached_tokens=int(meta.get("cachedContentTokenCount") or 0),
                )
        if calls:
            yield ToolCalls(calls)
        yield usage


def wire_contents(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """Our history as Gemini ``contents`` (roles ``user`` and ``model``)."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    for m in messages:
        parts: list[dict[str, Any]] = []
        if m.role == "system":
            continue
        if m.role == "tool":
            response: dict[str, Any] = {
                "name": m.name or names.get(m.tool_call_id, ""),
                "response": {"output": _maybe_json(m.content)},
            }
            if m.tool_call_id and not m.tool_call_id.startswith(_OWN_ID):
                response["id"] = m.tool_call_id
            parts.append({"functionResponse": response})
        else:
            if m.content:
                parts.append({"text": m.content})
            for c in m.tool_calls:
                names[c.id] = c.name
                call: dict[str, Any] = {"name": c.name, "args": _maybe_json(c.arguments or "{}")}
                if not c.id.startswith(_OWN_ID):
                    call["id"] = c.id
                parts.append({"functionCall": call})
        if not parts:
            continue
        role = "model" if m.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
