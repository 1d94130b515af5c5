"""The Pipeline as a Brain: scripted STT, fake TTS, real LLM adapters on fake servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from patter_core.brain import (
    AgentAudio,
    AgentText,
    Brain,
    BrainContext,
    BrainFailure,
    BrainOutput,
    CallerText,
    ResponseDone,
    ToolRequest,
    ToolSpec,
)
from patter_core.pipeline import Pipeline
from patter_core.providers.base import Transcription
from patter_core.providers.llm import (
    AnthropicLLM,
    CerebrasLLM,
    GoogleLLM,
    GroqLLM,
    OpenAILLM,
    StreamSettings,
)
from tests.fakes.llm_servers import Api, FakeLLM, Reply
from tests.fakes.speech import FakeTTS, ScriptedSTT

FAST = StreamSettings(connect_timeout=5.0, read_timeout=5.0, retries=1, backoff=0.01)
LOOKUP = ToolSpec(
    "lookup_order", "Look up an order", {"type": "object", "properties": {"order_id": {}}}
)
PROVIDERS: list[tuple[type[Any], Api]] = [
    (OpenAILLM, "openai"),
    (GroqLLM, "openai"),
    (CerebrasLLM, "openai"),
    (AnthropicLLM, "anthropic"),
    (GoogleLLM, "google"),
]


class Probe:
    """Reads a brain's outputs in the background; tests wait on what it saw."""

    def __init__(self, brain: Brain) -> None:
        self.items: list[BrainOutput] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._read(brain))

    async def _read(self, brain: Brain) -> None:
        async for item in brain.outputs():
            self.items.append(item)
            self._changed.set()

    async def until(self, pred: Callable[[list[BrainOutput]], bool]) -> None:
        while not pred(self.items):
            self._changed.clear()
            await self._changed.wait()

    def of(self, kind: type[Any], since: int = 0) -> list[Any]:
        return [i for i in self.items[since:] if isinstance(i, kind)]

    async def done(self, response_id: str | None = None, count: int = 1) -> list[ResponseDone]:
        def ok(items: list[BrainOutput]) -> bool:
            dones = [i for i in items if isinstance(i, ResponseDone)]
            if response_id is not None:
                return any(d.response_id == response_id for d in dones)
            return len(dones) >= count

        await self.until(ok)
        return self.of(ResponseDone)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def ctx(tools: list[ToolSpec] | None = None) -> BrainContext:
    return BrainContext(
        call_id="call-1",
        caller="+15550001111",
        callee="+15550002222",
        direction="inbound",
        system_prompt="You are a helpful agent.",
        tools=tools or [],
    )


async def started(pipe: Pipeline, tools: list[ToolSpec] | None = None) -> Probe:
    assert isinstance(pipe, Brain)
    probe = Probe(pipe)
    await pipe.start(ctx(tools))
    return probe


def llm_for(cls: type[Any], server: FakeLLM) -> Any:
    return cls(api_key="test-key", base_url=server.base_url, settings=FAST)


async def test_reply_streams_sentence_by_sentence() -> None:
    stt, tts = ScriptedSTT(), FakeTTS()
    async with FakeLLM("openai") as server:
        server.replies = [
            Reply(
                tokens=["Hello there. ", "I can help ", "with that. ", "What is ", "your order?"],
                gate_after=3,
            )
        ]
        pipe = Pipeline(stt=stt, llm=llm_for(OpenAILLM, server), tts=tts)
        probe = await started(pipe)
        await pipe.push_audio(b"\x00" * 32000)  # one second of caller audio
        stt.stream.turn("I need help with my order")
        await probe.until(lambda items: any(isinstance(i, AgentAudio) for i in items))
        # The first sentence is audible while the model is still writing.
        assert server.seen.completed == 0
        assert tts.started[0] == "Hello there."
        server.gate.set()
        (done,) = await probe.done()
        await probe.stop()
        await pipe.close()
    assert tts.started == ["Hello there.", "I can help with that.", "What is your order?"]
    fills = [a.payload[0] for a in probe.of(AgentAudio)]
    assert fills == sorted(fills) and set(fills) == {1, 2, 3}
    assert all(a.response_id == done.response_id for a in probe.of(AgentAudio))
    caller = probe.of(CallerText)
    assert caller[-1] == CallerText("I need help with my order", final=True)
    assert any(not c.final for c in caller)
    final_text = [t for t in probe.of(AgentText) if t.final]
    assert final_text[-1].text == "Hello there. I can help with that. What is your order?"
    assert "".join(t.text for t in probe.of(AgentText) if not t.final) == final_text[-1].text
    assert done.usage["llm_input_tokens"] == 50 and done.usage["llm_output_tokens"] == 12
    assert done.usage["llm_cached_tokens"] == 10
    assert done.usage["tts_characters"] == len(
        "Hello there.I can help with that.What is your order?"
    )
    assert done.usage["stt_seconds"] == pytest.approx(1.0)
    assert {"stt_final_ms", "llm_first_token_ms", "tts_first_byte_ms", "first_audio_ms"} <= set(
        done.timings
    )
    assert [(m.role, m.content) for m in pipe.history] == [
        ("system", "You are a helpful agent."),
        ("user", "I need help with my order"),
        ("assistant", "Hello there. I can help with that. What is your order?"),
    ]
    assert server.seen.requests[0]["messages"][-1] == {
        "role": "user",
        "content": "I need help with my order",
    }


@pytest.mark.parametrize(("cls", "api"), PROVIDERS, ids=[p[0].__name__ for p in PROVIDERS])
async def test_tool_call_round_trip(cls: type[Any], api: Api) -> None:
    stt, tts = ScriptedSTT(), FakeTTS()
    async with FakeLLM(api) as server:
        server.replies = [
            Reply(tokens=["Let me check. "], tools=[("lookup_order", {"order_id": 7})]),
            Reply(tokens=["Your order ships today."]),
        ]
        pipe = Pipeline(stt=stt, llm=llm_for(cls, server), tts=tts)
        probe = await started(pipe, [LOOKUP])
        stt.stream.turn("Where is order seven?")
        await probe.until(lambda items: any(isinstance(i, ToolRequest) for i in items))
        (req,) = probe.of(ToolRequest)
        assert req.name == "lookup_order" and req.arguments == {"order_id": 7}
        await pipe.send_tool_result(req.tool_call_id, {"status": "shipped"})
        (done,) = await probe.done()
        await probe.stop()
        await pipe.close()
    assert tts.started == ["Let me check.", "Your order ships today."]
    assert len(server.seen.requests) == 2
    assert "shipped" in json.dumps(server.seen.requests[1])
    roles = [m.role for m in pipe.history]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert pipe.history[2].tool_calls[0].name == "lookup_order"
    assert json.loads(pipe.history[3].content) == {"status": "shipped"}
    assert done.usage["llm_input_tokens"] > 0


async def test_barge_in_cancels_llm_and_tts_and_keeps_what_was_heard() -> None:
    stt, tts = ScriptedSTT(), FakeTTS()
    held = asyncio.Event()
    tts.hold["Second sentence is long."] = held
    async with FakeLLM("openai") as server:
        server.replies = [
            Reply(
                tokens=["First sentence here. ", "Second sentence is long. ", "Third one."],
                gate_after=2,
            )
        ]
        pipe = Pipeline(stt=stt, llm=llm_for(OpenAILLM, server), tts=tts)
        probe = await started(pipe)
        stt.stream.turn("Tell me everything")
        await tts.until(lambda t: "Second sentence is long." in t.started)
        await probe.until(lambda items: any(isinstance(i, AgentAudio) for i in items))
        old = probe.of(AgentAudio)[0].response_id
        mark = len(probe.items)
        # "First sentence here." is 200 ms of audio; the caller heard 60 ms of it.
        await pipe.interrupt(60.0)
        await server.until(lambda s: s.aborted == 1)
        await tts.until(lambda t: "Second sentence is long." in t.closed_early)
        server.gate.set()
        held.set()
        await pipe.say("Sorry, go ahead.")
        await probe.until(
            lambda items: any(isinstance(i, ResponseDone) and i.response_id != old for i in items)
        )
        await probe.stop()
        await pipe.close()
    assert server.seen.completed == 0
    assert "Third one." not in tts.started
    after = probe.of(AgentAudio, since=mark)
    assert after and all(a.response_id != old for a in after)
    assert probe.of(ResponseDone)[0].response_id == old
    assistant = [m.content for m in pipe.history if m.role == "assistant"]
    assert assistant == ["First", "Sorry, go ahead."]


async def test_on_message_plain_string_gets_the_text() -> None:
    seen: list[str] = []

    async def on_message(text: str) -> str:
        seen.append(text)
        return f"You said {text}. Anything else?"

    stt, tts = ScriptedSTT(), FakeTTS()
    pipe = Pipeline(stt=stt, on_message=on_message, tts=tts)
    probe = await started(pipe)
    stt.stream.turn("hello")
    await probe.done()
    await probe.stop()
    await pipe.close()
    assert seen == ["hello"]
    assert tts.started == ["You said hello.", "Anything else?"]
    assert pipe.history[-1].content == "You said hello. Anything else?"


async def test_on_message_async_iterator_gets_call_info() -> None:
    seen: list[dict[str, Any]] = []

    async def on_message(data):  # type: ignore[no-untyped-def]
        seen.append(data)
        for part in ["Thanks for ", "calling, ", f"{data['caller']}. ", "Bye now."]:
            yield part

    stt, tts = ScriptedSTT(), FakeTTS()
    pipe = Pipeline(stt=stt, on_message=on_message, tts=tts)
    probe = await started(pipe)
    stt.stream.turn("first")
    await probe.done()
    stt.stream.turn("second")
    await probe.done(count=2)
    await probe.stop()
    await pipe.close()
    assert seen[0]["text"] == "first" and seen[0]["call_id"] == "call-1"
    assert seen[1]["history"][-2:] == [
        {"role": "assistant", "content": "Thanks for calling, +15550001111. Bye now."},
        {"role": "user", "content": "second"},
    ]
    assert tts.started[:2] == ["Thanks for calling, +15550001111.", "Bye now."]


async def test_on_message_coroutine_returning_an_iterator() -> None:
    async def parts() -> AsyncIterator[str]:
        yield "One moment please."

    async def on_message(data: dict[str, Any]) -> AsyncIterator[str]:
        return parts()

    stt, tts = ScriptedSTT(), FakeTTS()
    pipe = Pipeline(stt=stt, on_message=on_message, tts=tts)
    probe = await started(pipe)
    stt.stream.turn("hi")
    await probe.done()
    await probe.stop()
    await pipe.close()
    assert tts.started == ["One moment please."]


def test_llm_and_on_message_together_is_an_error() -> None:
    async def on_message(text: str) -> str:
        return text

    llm = OpenAILLM(api_key="k")
    with pytest.raises(ValueError, match="not both"):
        Pipeline(stt=ScriptedSTT(), tts=FakeTTS(), llm=llm, on_message=on_message)
    with pytest.raises(ValueError, match="needs"):
        Pipeline(stt=ScriptedSTT(), tts=FakeTTS())


async def test_vad_guard_holds_the_turn_while_the_caller_speaks() -> None:
    texts: list[str] = []

    async def on_message(text: str) -> str:
        texts.append(text)
        return "Okay."

    stt = ScriptedSTT()
    pipe = Pipeline(stt=stt, on_message=on_message, tts=FakeTTS())
    probe = await started(pipe)
    pipe.caller_speaking(True)
    stt.stream.emit(Transcription("I want to", final=True, end_of_turn=True))
    stt.stream.emit(Transcription("cancel", final=False))
    stt.stream.emit(Transcription("cancel my order", final=True, end_of_turn=True))
    await stt.stream.drained()
    pipe.caller_speaking(False)
    await probe.done()
    await probe.stop()
    await pipe.close()
    assert texts == ["I want to cancel my order"]
    assert [c.text for c in probe.of(CallerText) if c.final] == ["I want to cancel my order"]


async def test_final_then_silence_ends_the_turn() -> None:
    async def on_message(text: str) -> str:
        return f"Heard {text}."

    stt, tts = ScriptedSTT(), FakeTTS()
    pipe = Pipeline(stt=stt, on_message=on_message, tts=tts, endpoint_silence_ms=20)
    probe = await started(pipe)
    stt.stream.emit(Transcription("yes", final=True))
    stt.stream.emit(Transcription("please", final=True))
    await probe.done()
    await probe.stop()
    await pipe.close()
    assert tts.started == ["Heard yes please."]


async def test_text_filter_runs_on_each_piece_but_not_on_say() -> None:
    async def on_message(text: str) -> str:
        return "That darn thing broke. Sorry about that."

    stt, tts = ScriptedSTT(), FakeTTS()
    pipe = Pipeline(
        stt=stt, on_message=on_message, tts=tts, text_filter=lambda t: t.replace("darn", "****")
    )
    probe = await started(pipe)
    await pipe.say("Hi, darn it, welcome.")
    await probe.done()
    stt.stream.turn("what happened")
    await probe.done(count=2)
    await probe.stop()
    await pipe.close()
    assert tts.started == ["Hi, darn it, welcome.", "That **** thing broke.", "Sorry about that."]


async def test_tool_rounds_are_limited() -> None:
    stt, tts = ScriptedSTT(), FakeTTS()
    async with FakeLLM("openai") as server:
        server.replies = [Reply(tools=[("lookup_order", {"order_id": n})]) for n in range(3)]
        pipe = Pipeline(stt=stt, llm=llm_for(OpenAILLM, server), tts=tts, max_tool_rounds=1)
        probe = await started(pipe, [LOOKUP])
        stt.stream.turn("loop forever")
        await probe.until(lambda items: any(isinstance(i, ToolRequest) for i in items))
        await pipe.send_tool_result(probe.of(ToolRequest)[0].tool_call_id, "ok")
        await probe.done()
        await probe.stop()
        await pipe.close()
    assert len(probe.of(ToolRequest)) == 1
    assert len(server.seen.requests) == 2
    (failure,) = probe.of(BrainFailure)
    assert failure.code == "tool_rounds_exceeded" and not failure.fatal
    # The unexecuted calls of the last round are not left dangling in history.
    assert [m.role for m in pipe.history] == ["system", "user", "assistant", "tool"]


async def test_llm_failure_is_reported_and_the_reply_ends() -> None:
    stt, tts = ScriptedSTT(), FakeTTS()
    async with FakeLLM("anthropic") as server:
        bad = Reply(tokens=["Sure thing. ", "And"], gate_after=2, fail_after=2)
        server.replies = [bad]
        pipe = Pipeline(stt=stt, llm=llm_for(AnthropicLLM, server), tts=tts)
        probe = await started(pipe)
        stt.stream.turn("help")
        await tts.until(lambda t: bool(t.started))
        server.gate.set()
        await probe.done()
        await probe.stop()
        await pipe.close()
    (failure,) = probe.of(BrainFailure)
    assert failure.code == "llm_error" and "boom" in failure.message and not failure.fatal
    assert tts.started == ["Sure thing."]
    assert pipe.history[-1].content == "Sure thing."


async def test_malformed_tool_arguments_go_back_to_the_model_as_an_error() -> None:
    stt, tts = ScriptedSTT(), FakeTTS()
    async with FakeLLM("openai") as server:
        server.replies = [Reply(tools=[("lookup_order", {"order_id": 1})]), Reply(tokens=["Hm."])]
        pipe = Pipeline(stt=stt, llm=llm_for(OpenAILLM, server), tts=tts)
        # Corrupt the arguments the way a model sometimes does: cut-off JSON.
        real_stream = pipe.llm.stream  # type: ignore[union-attr]

        async def broken(messages: Any, tools: Any = ()) -> AsyncIterator[Any]:
            from patter_core.providers.base import ToolCallPart, ToolCalls

            async for chunk in real_stream(messages, tools):
                if isinstance(chunk, ToolCalls):
                    chunk = ToolCalls(
                        [ToolCallPart(c.id, c.name, '{"order_id": ') for c in chunk.calls]
                    )
                yield chunk

        pipe.llm.stream = broken  # type: ignore[union-attr,method-assign,assignment]
        probe = await started(pipe, [LOOKUP])
        stt.stream.turn("order one")
        await probe.done()
        await probe.stop()
        await pipe.close()
    assert probe.of(ToolRequest) == []
    assert "not a valid JSON object" in json.dumps(server.seen.requests[1])


async def test_a_failing_on_message_plays_what_it_said_and_leaves_no_task_behind() -> None:
    """A bug in on_message after it yielded text: reported, the whole sentences it gave
    still play before the reply ends, its speaker stops, and the next turn is answered."""

    async def on_message(text: str) -> AsyncIterator[str]:
        if text == "and now":
            yield "All good now."
            return
        yield "Let me check that for you. "
        yield "One moment"  # never completed: not spoken
        raise RuntimeError("bug in the handler")

    loop = asyncio.get_running_loop()
    created: list[asyncio.Task[Any]] = []  # strong references: a leaked task stays visible

    def record(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        created.append(task)
        return task

    previous = loop.get_task_factory()
    loop.set_task_factory(record)
    try:
        stt, tts = ScriptedSTT(), FakeTTS()
        pipe = Pipeline(stt=stt, on_message=on_message, tts=tts)
        probe = await started(pipe)
        stt.stream.turn("first")
        await probe.done(count=1)
        stt.stream.turn("again")
        await probe.done(count=2)
        stt.stream.turn("and now")
        await probe.done(count=3)
        await probe.stop()
        await pipe.close()
    finally:
        loop.set_task_factory(previous)
    pending = [t.get_coro() for t in created if not t.done()]
    assert pending == []
    assert asyncio.all_tasks() == {asyncio.current_task()}

    failures = probe.of(BrainFailure)
    assert [(f.code, f.fatal) for f in failures] == [("pipeline_error", False)] * 2
    assert "RuntimeError: bug in the handler" in failures[0].message
    assert tts.started == ["Let me check that for you."] * 2 + ["All good now."]
    assert tts.closed_early == []
    dones = probe.of(ResponseDone)
    for done in dones:
        # Each reply's audio all went out before its end, the failed ones' too.
        at = [
            n
            for n, i in enumerate(probe.items)
            if getattr(i, "response_id", None) == done.response_id
        ]
        audio = [n for n in at if isinstance(probe.items[n], AgentAudio)]
        assert audio and max(audio) < probe.items.index(done)
    finals = [t.text for t in probe.of(AgentText) if t.final]
    assert finals == ["Let me check that for you."] * 2 + ["All good now."]
    assert [(m.role, m.content) for m in pipe.history[1:]] == [
        ("user", "first"),
        ("assistant", "Let me check that for you."),
        ("user", "again"),
        ("assistant", "Let me check that for you."),
        ("user", "and now"),
        ("assistant", "All good now."),
    ]


async def test_close_while_a_failed_reply_still_plays_stops_its_synthesis() -> None:
    async def on_message(text: str) -> AsyncIterator[str]:
        yield "Let me check that for you. "
        raise RuntimeError("bug in the handler")

    stt, tts = ScriptedSTT(), FakeTTS()
    held = asyncio.Event()
    tts.hold["Let me check that for you."] = held
    pipe = Pipeline(stt=stt, on_message=on_message, tts=tts)
    probe = await started(pipe)
    stt.stream.turn("first")
    await probe.until(lambda items: any(isinstance(i, BrainFailure) for i in items))
    await probe.until(lambda items: any(isinstance(i, AgentAudio) for i in items))
    await probe.stop()
    await pipe.close()
    await pipe.say("Anyone there?")  # after close: nothing starts
    assert tts.closed_early == ["Let me check that for you."]
    assert tts.started == ["Let me check that for you."]
    assert asyncio.all_tasks() == {asyncio.current_task()}
