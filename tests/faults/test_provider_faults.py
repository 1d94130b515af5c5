"""Pipeline providers that stall, drop or answer garbage in the middle of a call.

Each fault is played on a real call over the simulated Twilio with Deepgram,
an OpenAI-style LLM and OpenAI TTS on local fakes. The call must report an
``error`` event saying what broke, end with the caller's hangup as ``completed``,
be recorded so in the store, and the same server must answer the next call
with healthy providers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from patter_core.events import ErrorEvent
from patter_core.providers.llm import OpenAILLM, StreamSettings
from patter_core.providers.stt import DeepgramSTT
from patter_core.providers.stt.ws import WsOptions
from patter_core.providers.tts import OpenAITTS
from patter_core.store import CallStore
from patter_core.testing import tone_mulaw
from tests.fakes.deepgram import deepgram_server
from tests.fakes.llm_servers import FakeLLM, Reply
from tests.fakes.tts_http import openai_server
from tests.twilio_harness import twilio_rig

FAST = StreamSettings(connect_timeout=2.0, read_timeout=0.3, retries=0, backoff=0.01)
HELLO = ["Hello ", "there, ", "how can I help?"]


GARBAGE = (b"data: {not json\n\n", b"\x00\xff\xfe garbage\n\n", b"data: [1,2\n\n")
REQUESTS = web.AppKey("requests", list[int])
HEALTHY = (b'data: {"choices":[{"index":0,"delta":{"content":"OK."}}]}\n\n', b"data: [DONE]\n\n")


async def _garbage_llm(request: web.Request) -> web.StreamResponse:
    """Garbage for the first request, a short valid answer after that."""
    count = request.app[REQUESTS]
    seen = len(count)
    count.append(seen)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for chunk in GARBAGE if seen == 0 else HEALTHY:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def _speak(call: Any) -> None:
    """1.2 s of tone: enough for the fake Deepgram to finish one utterance."""
    tone = tone_mulaw(300, 1.2, amplitude=6000)
    call.say(tone)


# Each case is a whole call or two (~3 s): the default suite plays one per provider kind.
FAULTS = [
    "llm_stall",
    pytest.param("llm_drop", marks=pytest.mark.slow),
    pytest.param("llm_error", marks=pytest.mark.slow),
    "llm_garbage",
    "tts_drop",
    pytest.param("stt_drop", marks=pytest.mark.slow),
    "stt_lost",
]


@pytest.mark.parametrize("fault", FAULTS)
async def test_provider_fault_mid_call_is_explained_and_the_next_call_is_served(
    fault: str, tmp_path: Path
) -> None:
    garbage = web.Application()
    garbage[REQUESTS] = []
    garbage.router.add_post("/v1/chat/completions", _garbage_llm)
    runner = web.AppRunner(garbage)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    garbage_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        async with deepgram_server() as dg, openai_server() as tts_fake, FakeLLM("openai") as llm:
            bad = {
                "llm_stall": Reply(tokens=HELLO, stall_after=1),
                "llm_drop": Reply(tokens=HELLO, fail_after=1, fail="drop"),
                "llm_error": Reply(tokens=HELLO, fail_after=1, fail="error"),
            }.get(fault, Reply(tokens=HELLO))
            llm.replies = [bad, Reply(tokens=HELLO)]
            if fault == "tts_drop":
                tts_fake.mode = "drop"
            if fault in ("stt_drop", "stt_lost"):
                dg.mode = "drop"

            def make_agent(phone: Any) -> Any:
                base = garbage_url if fault == "llm_garbage" else llm.url
                return phone.agent(
                    stt=DeepgramSTT(
                        dg.key,
                        base_url=f"{dg.ws_url}/v1/listen",
                        # stt_drop: one reconnect heals it; stt_lost: no reconnect allowed.
                        options=WsOptions(reconnects=0 if fault == "stt_lost" else 1),
                    ),
                    llm=OpenAILLM(api_key="test-key", base_url=f"{base}/v1", settings=FAST),
                    tts=OpenAITTS(tts_fake.key, base_url=f"{tts_fake.http_url}/v1"),
                )

            async with twilio_rig(make_agent, persist=str(tmp_path)) as rig:
                call = await rig.sim.inbound_call()
                first = await rig.next_event("call.started")
                await _speak(call)
                if fault == "stt_drop":
                    # Healed, not reported: the caller's words still reach the agent.
                    await dg.until(lambda seen: seen.connections >= 2)
                    await _speak(call)
                    await call.wait_heard(4000, timeout=15)
                    error = None
                else:
                    error = await rig.next_event("error", timeout=15)
                    assert isinstance(error, ErrorEvent) and error.message
                    # Losing the ears for good is fatal; anything else the call rides out.
                    assert error.fatal is (fault == "stt_lost")
                tts_fake.mode = "normal"
                if error is not None and error.fatal:
                    # The call ends itself, says why, and the carrier leg is hung up.
                    ended = await rig.next_event("call.ended")
                    assert ended.status == "engine_error", ended  # type: ignore[attr-defined]
                    await call.wait_closed(timeout=10)
                else:
                    await call.hangup()
                    ended = await rig.next_event("call.ended")
                    assert ended.status == "completed", ended  # type: ignore[attr-defined]
                # The same server, the next call: the agent answers in audio.
                nxt = await rig.sim.inbound_call()
                second = await rig.next_event("call.started")
                await _speak(nxt)
                await nxt.wait_heard(4000, timeout=15)
                await nxt.hangup()
                assert (await rig.next_event("call.ended")).status == "completed"  # type: ignore[attr-defined]
            store = CallStore(tmp_path)
            try:
                row = store.get_call(first.call_id)
                want = "engine_error" if fault == "stt_lost" else "completed"
                assert row is not None and row["status"] == want, row
                assert store.get_call(second.call_id)["status"] == "completed"  # type: ignore[index]
                folder = next((tmp_path / "calls").glob(f"*/{first.call_id}"))
                logged = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
                errors = [e for e in logged if e["type"] == "error"]
                if error is None:
                    assert not errors
                else:
                    assert errors and errors[0]["code"] == error.code
            finally:
                store.close()
    finally:
        await runner.cleanup()
