"""Local HTTP servers that stream like the OpenAI, Anthropic and Gemini APIs.

Each request takes the next scripted :class:`Reply` (text tokens, tool calls,
or a failure: HTTP status, stall, in-stream error, dropped connection) and
streams it in that API's SSE shape (protocols.md §11). Auth headers are
checked; a wrong key gets a 401 whose body echoes the key, as some gateways do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Api = Literal["openai", "anthropic", "google"]


@dataclass
class Reply:
    tokens: list[str] = field(default_factory=list)
    tools: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    # Checkpoints count text tokens already sent (the API's preamble events don't count).
    stall_after: int | None = None  # go silent
    fail_after: int | None = None  # the failure below
    fail: Literal["error", "drop"] = "error"
    gate_after: int | None = None  # wait for ``FakeLLM.gate``
    echo_key: bool = False  # error body repeats the key it was sent


@dataclass
class Seen:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    completed: int = 0
    aborted: int = 0


class FakeLLM:
    def __init__(self, api: Api, *, key: str = "test-key") -> None:
        self.api = api
        self.key = key
        self.replies: list[Reply] = []
        self.seen = Seen()
        self.gate = asyncio.Event()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self._handle)
        self.app.router.add_post("/v1/messages", self._handle)
        self.app.router.add_post("/v1beta/models/{model}", self._handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url=`` for this API's adapter."""
        return f"{self.url}/v1" if self.api == "openai" else self.url

    async def until(self, predicate: Callable[[Seen], bool]) -> None:
        while not predicate(self.seen):
            self._changed.clear()
            await self._changed.wait()

    async def __aenter__(self) -> FakeLLM:
        self._runner = web.AppRunner(self.app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.gate.set()
        assert self._runner is not None
        await self._runner.cleanup()

    # --- request handling ---------------------------------------------------------------

    def _auth_ok(self, request: web.Request) -> str | None:
        """The key the client sent if it is wrong, else ``None``."""
        h = request.headers
        if self.api == "openai":
            sent = h.get("Authorization", "").removeprefix("Bearer ")
        elif self.api == "anthropic":
            sent = h.get("x-api-key", "")
            if h.get("anthropic-version") != "2023-06-01":
                return sent or "missing"
        else:
            sent = h.get("x-goog-api-key", "")
        return None if sent == self.key else sent

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.headers.append(dict(request.headers))
        body = await request.json()
        self.seen.requests.append(body)
        self._poke()
        if self.api == "google" and (
            not request.path.endswith(":streamGenerateContent") or request.query.get("alt") != "sse"
        ):
            return web.json_response(
                {"error": {"code": 404, "message": "no such method"}}, status=404
            )
        wrong = self._auth_ok(request)
        reply = self.replies.pop(0) if self.replies else Reply(tokens=["OK."])
        if wrong is not None or reply.echo_key:
            sent = wrong if wrong is not None else self._sent_key(request)
            return web.json_response(
                {"error": {"message": f"Incorrect API key provided: {sent}"}}, status=401
            )
        if reply.status != 200:
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                status=reply.status,
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        done = False
        try:
            sent = 0
            for event, is_token in self._events(reply, body):
                at = sent if (is_token or sent == len(reply.tokens)) else -1
                sent += is_token
                if at == reply.stall_after:
                    reply.stall_after = None
                    await asyncio.Event().wait()
                if at == reply.gate_after:
                    reply.gate_after = None
                    await self.gate.wait()
                if at == reply.fail_after:
                    if reply.fail == "drop":
                        assert request.transport is not None
                        request.transport.close()
                        return resp
                    await resp.write(self._error_event())
                    break
                await resp.write(event)
            await resp.write_eof()
            done = True
            return resp
        finally:
            if done:
                self.seen.completed += 1
            else:
                self.seen.aborted += 1
            self._poke()

    def _sent_key(self, request: web.Request) -> str:
        h = request.headers
        return (
            h.get("Authorization", "").removeprefix("Bearer ")
            or h.get("x-api-key", "")
            or h.get("x-goog-api-key", "")
        )

    def _poke(self) -> None:
        self._changed.set()

    # --- wire shapes --------------------------------------------------------------------

    def _events(self, reply: Reply, body: dict[str, Any]) -> list[tuple[bytes, bool]]:
        """The reply's events, each flagged if it carries a text token."""
        if self.api == "openai":
            events = _openai_events(reply)
        elif self.api == "anthropic":
            events = _anthropic_events(reply)
        else:
            events = _gemini_events(reply)
        tokens = {_sse_token(self.api, t) for t in reply.tokens}
        return [(e, any(tok in e for tok in tokens)) for e in events]

    def _error_event(self) -> bytes:
        if self.api == "anthropic":
            err = {"type": "error", "error": {"type": "invalid_request_error", "message": "boom"}}
            return _sse(err, event="error")
        if self.api == "google":
            return _sse({"error": {"code": 400, "message": "boom", "status": "INVALID_ARGUMENT"}})
        return _sse({"error": {"message": "boom", "type": "server_error"}})


def _sse(data: Any, *, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def _sse_token(api: Api, token: str) -> bytes:
    """The bytes that mark an event as carrying ``token`` in ``api``'s shape."""
    text = json.dumps(token)
    key = {"openai": '"content": ', "anthropic": '"text": ', "google": '"text": '}[api]
    return (key + text).encode()


def _split(text: str, parts: int = 3) -> list[str]:
    step = max(len(text) // parts, 1)
    return [text[i : i + step] for i in range(0, len(text), step)] or [""]


def _openai_events(reply: Reply) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                "usage": None,
            }
        )

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": t}) for t in reply.tokens]
    for index, (name, args) in enumerate(reply.tools):
        first = {"index": index, "id": f"call_{index}", "type": "function"}
        out.append(chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]}))
        for frag in _split(json.dumps(args)):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]}))
    out.append(chunk({}, "tool_calls" if reply.tools else "stop"))
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 12,
        "total_tokens": 62,
        "prompt_tokens_details": {"cached_tokens": 10},
    }
    out.append(
        _sse({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage})
    )
    out.append(b"data: [DONE]\n\n")
    return out


def _anthropic_events(reply: Reply) -> list[bytes]:
    def ev(data: dict[str, Any]) -> bytes:
        return _sse(data, event=data["type"])

    usage = {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5}
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude",
        "content": [],
        "stop_reason": None,
        "usage": usage,
    }
    out = [ev({"type": "message_start", "message": message}), ev({"type": "ping"})]
    index = 0
    if reply.tokens:
        out.append(
            ev(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            )
        )
        for t in reply.tokens:
            delta = {"type": "text_delta", "text": t}
            out.append(ev({"type": "content_block_delta", "index": 0, "delta": delta}))
        out.append(ev({"type": "content_block_stop", "index": 0}))
        out.append(ev({"type": "ping"}))
        index = 1
    for n, (name, args) in enumerate(reply.tools):
        block = {"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": {}}
        out.append(ev({"type": "content_block_start", "index": index, "content_block": block}))
        for frag in _split(json.dumps(args)):
            delta = {"type": "input_json_delta", "partial_json": frag}
            out.append(ev({"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(ev({"type": "content_block_stop", "index": index}))
        index += 1
    stop = "tool_use" if reply.tools else "end_turn"
    out.append(
        ev(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": 30},
            }
        )
    )
    out.append(ev({"type": "message_stop"}))
    return out


def _gemini_events(reply: Reply) -> list[bytes]:
    def resp(parts: list[dict[str, Any]], finish: str | None = None) -> bytes:
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            cand["finishReason"] = finish
        return _sse(
            {
                "candidates": [cand],
                "usageMetadata": {
                    "promptTokenCount": 10,
                    "candidatesTokenCount": 3,
                    "totalTokenCount": 13,
                },
                "modelVersion": "gemini-2.0-flash",
            }
        )

    out = [resp([{"text": t}]) for t in reply.tokens]
    calls = [{"functionCall": {"name": name, "args": args}} for name, args in reply.tools]
    out.append(resp(calls, "STOP") if calls else resp([{"text": ""}], "STOP"))
    return out
