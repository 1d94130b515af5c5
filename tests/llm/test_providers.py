"""Each LLM adapter against a local server that streams like its API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from patter_core.brain import ToolSpec
from patter_core.providers.base import (
    LLM,
    LLMChunk,
    Message,
    ProviderError,
    TextDelta,
    ToolCallPart,
    ToolCalls,
    Usage,
)
from patter_core.providers.llm import (
    AnthropicLLM,
    CerebrasLLM,
    GoogleLLM,
    GroqLLM,
    OpenAILLM,
    StreamSettings,
)
from tests.fakes.llm_servers import Api, FakeLLM, Reply

FAST = StreamSettings(connect_timeout=5.0, read_timeout=0.5, retries=2, backoff=0.01)
PROVIDERS: list[tuple[type[Any], Api, str]] = [
    (OpenAILLM, "openai", "OPENAI_API_KEY"),
    (GroqLLM, "openai", "GROQ_API_KEY"),
    (CerebrasLLM, "openai", "CEREBRAS_API_KEY"),
    (AnthropicLLM, "anthropic", "ANTHROPIC_API_KEY"),
    (GoogleLLM, "google", "GOOGLE_API_KEY"),
]
IDS = [p[0].__name__ for p in PROVIDERS]
LOOKUP = ToolSpec(
    "lookup_order",
    "Look up an order",
    {"type": "object", "properties": {"order_id": {"type": "integer"}}},
)


def make(cls: type[Any], server: FakeLLM, key: str = "test-key") -> LLM:
    llm: LLM = cls(api_key=key, base_url=server.base_url, temperature=0.2, settings=FAST)
    return llm


async def collect(stream: AsyncIterator[LLMChunk]) -> list[LLMChunk]:
    return [chunk async for chunk in stream]


def text_of(chunks: list[LLMChunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


HISTORY = [Message("system", "Be brief."), Message("user", "Hi")]


@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
async def test_streams_text_and_usage(cls: type[Any], api: Api, env: str) -> None:
    async with FakeLLM(api) as server:
        server.replies = [Reply(tokens=["Hel", "lo ", "there."])]
        chunks = await collect(make(cls, server).stream(HISTORY))
    assert text_of(chunks) == "Hello there."
    usage = [c for c in chunks if isinstance(c, Usage)]
    assert usage and usage[-1].input_tokens > 0 and usage[-1].output_tokens > 0
    body = server.seen.requests[0]
    if api == "openai":
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["temperature"] == 0.2
    elif api == "anthropic":
        assert body["system"] == "Be brief." and body["max_tokens"] > 0
        assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    else:
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
        assert body["generationConfig"]["temperature"] == 0.2


@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
async def test_tool_call_round_trip(cls: type[Any], api: Api, env: str) -> None:
    async with FakeLLM(api) as server:
        server.replies = [
            Reply(tokens=["Let me check."], tools=[("lookup_order", {"order_id": 7})]),
            Reply(tokens=["It ships today."]),
        ]
        llm = make(cls, server)
        first = await collect(llm.stream(HISTORY, [LOOKUP]))
        (calls,) = [c for c in first if isinstance(c, ToolCalls)]
        (call,) = calls.calls
        assert call.name == "lookup_order" and json.loads(call.arguments) == {"order_id": 7}
        assert call.id
        history = [
            *HISTORY,
            Message("assistant", "Let me check.", tool_calls=[call]),
            Message(
                "tool", json.dumps({"status": "shipped"}), tool_call_id=call.id, name=call.name
            ),
        ]
        second = await collect(llm.stream(history, [LOOKUP]))
    assert text_of(second) == "It ships today."
    body = server.seen.requests[1]
    if api == "openai":
        assert body["tools"][0]["function"]["name"] == "lookup_order"
        assistant, tool = body["messages"][-2:]
        assert assistant["tool_calls"][0]["id"] == call.id
        assert tool == {"role": "tool", "tool_call_id": call.id, "content": '{"status": "shipped"}'}
    elif api == "anthropic":
        assert body["tools"][0]["input_schema"] == LOOKUP.parameters
        assistant, user = body["messages"][-2:]
        assert assistant["content"][1] == {
            "type": "tool_use",
            "id": call.id,
            "name": "lookup_order",
            "input": {"order_id": 7},
        }
        assert user["content"][0]["type"] == "tool_result"
        assert user["content"][0]["tool_use_id"] == call.id
    else:
        decls = body["tools"][0]["functionDeclarations"]
        assert decls[0]["name"] == "lookup_order"
        model, user = body["contents"][-2:]
        assert model["parts"][1]["functionCall"] == {
            "name": "lookup_order",
            "args": {"order_id": 7},
        }
        assert user["parts"][0]["functionResponse"] == {
            "name": "lookup_order",
            "response": {"output": {"status": "shipped"}},
        }


@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
async def test_429_is_retried_before_the_first_token(cls: type[Any], api: Api, env: str) -> None:
    async with FakeLLM(api) as server:
        server.replies = [Reply(status=429), Reply(tokens=["Fine."])]
        chunks = await collect(make(cls, server).stream(HISTORY))
    assert text_of(chunks) == "Fine."
    assert len(server.seen.requests) == 2


@pytest.mark.parametrize("fail", ["error", "drop"])
@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
async def test_mid_stream_failure_raises_without_retry(
    cls: type[Any], api: Api, env: str, fail: str
) -> None:
    got: list[LLMChunk] = []
    async with FakeLLM(api) as server:
        # The failure waits until the client has the first words (aiohttp drops
        # unread buffered bytes when the connection dies).
        bad = Reply(tokens=["One ", "two ", "three ", "four."], gate_after=4, fail_after=4)
        bad.fail = "drop" if fail == "drop" else "error"
        server.replies = [bad, Reply(tokens=["Retried."])]
        with pytest.raises(ProviderError) as info:
            async for chunk in make(cls, server).stream(HISTORY):
                got.append(chunk)
                server.gate.set()
    assert text_of(got).startswith("One")
    assert len(server.seen.requests) == 1
    assert info.value.provider == cls.name


@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
async def test_stall_after_first_token_times_out(cls: type[Any], api: Api, env: str) -> None:
    async with FakeLLM(api) as server:
        server.replies = [Reply(tokens=["Hi ", "there ", "friend."], stall_after=3)]
        with pytest.raises(ProviderError, match="stalled"):
            await collect(make(cls, server).stream(HISTORY))
        await server.until(lambda s: s.aborted == 1)
    assert len(server.seen.requests) == 1


@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
async def test_error_body_echoing_the_key_never_reaches_the_exception(
    cls: type[Any], api: Api, env: str
) -> None:
    secret = "sk-live-SECRET-123456"
    async with FakeLLM(api, key=secret) as server:
        server.replies = [Reply(echo_key=True)]
        with pytest.raises(ProviderError) as info:
            await collect(make(cls, server, key=secret).stream(HISTORY))
        with pytest.raises(ProviderError) as wrong:
            await collect(make(cls, server, key="sk-wrong-OTHER-999").stream(HISTORY))
    assert info.value.status == 401 and not info.value.retryable
    assert secret not in str(info.value) and secret not in repr(info.value.args)
    assert "[redacted]" in str(info.value)
    assert "sk-wrong-OTHER-999" not in str(wrong.value)
    assert len(server.seen.requests) == 2  # a 401 is not retried


@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
async def test_closing_the_stream_drops_the_connection(cls: type[Any], api: Api, env: str) -> None:
    async with FakeLLM(api) as server:
        server.replies = [Reply(tokens=["First. ", "Second. ", "Third."], gate_after=3)]
        stream = make(cls, server).stream(HISTORY)
        async for chunk in stream:
            if isinstance(chunk, TextDelta):
                break
        await stream.aclose()  # type: ignore[attr-defined]
        await server.until(lambda s: s.aborted == 1)
    assert server.seen.completed == 0


@pytest.mark.parametrize(("cls", "api", "env"), PROVIDERS, ids=IDS)
def test_key_from_env_or_clear_error(
    cls: type[Any], api: Api, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(ValueError, match=env):
        cls()
    monkeypatch.setenv(env, "from-env")
    llm = cls()
    assert "from-env" not in repr(llm)


async def test_openai_fragments_join_by_index_for_parallel_calls() -> None:
    async with FakeLLM("openai") as server:
        server.replies = [Reply(tools=[("a", {"x": 1}), ("b", {"y": "two"})])]
        chunks = await collect(make(OpenAILLM, server).stream(HISTORY, [LOOKUP]))
    (calls,) = [c for c in chunks if isinstance(c, ToolCalls)]
    assert calls.calls == [
        ToolCallPart("call_0", "a", '{"x": 1}'),
        ToolCallPart("call_1", "b", '{"y": "two"}'),
    ]


async def test_malformed_event_is_a_provider_error() -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"data: {not json\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        llm = OpenAILLM(api_key="k", base_url=f"http://127.0.0.1:{port}/v1", settings=FAST)
        with pytest.raises(ProviderError, match="malformed"):
            await collect(llm.stream(HISTORY))
    finally:
        await runner.cleanup()
