"""The pipeline as a brain: streaming replies, on_message, barge-in cancellation."""

import asyncio

import pytest

from patter_core.brain import AgentAudio, AgentText, BrainContext, CallerText, ResponseDone
from patter_core.pipeline import Pipeline, Segmenter
from tests.fakes.pipeline_fakes import ScriptedSTT, ScriptedTTS


def _ctx() -> BrainContext:
    return BrainContext(
        call_id="c", caller="+15550001111", callee="+15550002222", direction="inbound"
    )


async def _collect_until_done(brain: Pipeline, timeout: float = 5.0) -> list:
    out = []
    async with asyncio.timeout(timeout):
        async for item in brain.outputs():
            out.append(item)
            if isinstance(item, ResponseDone):
                return out
    return out


def test_segmenter_cuts_sentences_but_not_abbreviations_or_decimals():
    seg = Segmenter()
    pieces = seg.push("Hello Dr. Smith, your balance is 3.50 dollars. ")
    pieces += seg.push("Anything else? Sure")
    pieces += seg.flush()
    assert pieces == ["Hello Dr. Smith, your balance is 3.50 dollars.", "Anything else?", "Sure"]


def test_llm_and_on_message_together_is_an_error():
    with pytest.raises(ValueError, match="mutually exclusive"):
        Pipeline(stt=ScriptedSTT(), tts=ScriptedTTS(), llm=object(), on_message=lambda t: t)  # type: ignore[arg-type]


async def test_on_message_returning_a_string():
    stt, tts = ScriptedSTT(), ScriptedTTS()
    seen = []

    async def on_message(data):
        seen.append(data)
        return f"You said {data['text']}."

    brain = Pipeline(stt=stt, tts=tts, on_message=on_message)
    await brain.start(_ctx())
    stt.streams[0].say("check my order")
    out = await _collect_until_done(brain)
    assert seen[0]["text"] == "check my order" and seen[0]["caller"] == "+15550001111"
    finals = [o.text for o in out if isinstance(o, CallerText) and o.final]
    assert finals == ["check my order"]
    assert any(isinstance(o, CallerText) and not o.final for o in out)
    assert (
        "".join(o.text for o in out if isinstance(o, AgentText)).strip()
        == "You said check my order."
    )
    assert sum(isinstance(o, AgentAudio) for o in out) > 0
    done = out[-1]
    assert done.usage["tts_characters"] == len("You said check my order.")
    assert "tts_first_byte_ms" in done.timings
    assert brain.history[-1].content == "You said check my order."
    await brain.close()


async def test_on_message_streams_sentence_by_sentence():
    stt, tts = ScriptedSTT(), ScriptedTTS()
    release = asyncio.Event()
    first_audio_before_release = asyncio.Event()

    async def on_message(text, data):
        yield "First sentence here. "
        await release.wait()  # the rest of the reply is not written yet
        yield "Second one follows."

    brain = Pipeline(stt=stt, tts=tts, on_message=on_message)
    await brain.start(_ctx())
    stt.streams[0].say("hello")
    out = []
    async with asyncio.timeout(5):
        async for item in brain.outputs():
            out.append(item)
            if isinstance(item, AgentAudio) and not release.is_set():
                first_audio_before_release.set()
                release.set()
            if isinstance(item, ResponseDone):
                break
    assert first_audio_before_release.is_set()
    assert tts.started == ["First sentence here.", "Second one follows."]
    await brain.close()


async def test_barge_in_cancels_tts_and_keeps_only_what_was_heard():
    stt, tts = ScriptedSTT(), ScriptedTTS(chunk_delay=0.02)

    async def on_message(data):
        return "One two three four five six seven eight nine ten. Eleven twelve thirteen."

    brain = Pipeline(stt=stt, tts=tts, on_message=on_message)
    await brain.start(_ctx())
    stt.streams[0].say("tell me")
    audio = 0
    async with asyncio.timeout(5):
        async for item in brain.outputs():
            if isinstance(item, AgentAudio):
                audio += 1
                if audio == 5:
                    break
    await brain.interrupt(heard_ms=1000)  # about 2 of the first sentence's 10 words
    assert tts.cancelled == ["One two three four five six seven eight nine ten."]
    assert tts.started == [
        "One two three four five six seven eight nine ten."
    ]  # second never began
    await asyncio.sleep(0.1)
    leftovers = []
    while not brain._out.empty():
        leftovers.append(brain._out.get_nowait())
    assert not [x for x in leftovers if isinstance(x, AgentAudio)], "no stale audio after barge-in"
    heard = brain.history[-1]
    assert heard.role == "assistant" and heard.content.startswith("One")
    assert heard.content == "One two …"
    await brain.close()
