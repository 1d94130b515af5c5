"""``make demo``: a whole phone call on this machine, no accounts, keys or network.

A simulated caller (``patter_core.testing.SimulatedTwilio``, the same one the
tests use) dials in over the real stack: the signed voice webhook, TwiML, the
media WebSocket, the call session with barge-in detection, an offline
pipeline (PocketSphinx speech-to-text, a small receptionist written as an
``on_message`` handler, eSpeak NG text-to-speech) and the call store. The
caller's own words are synthesised with eSpeak too, and sent as 8 kHz µ-law
exactly as a phone line would carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from patter_core import Patter, Twilio
from patter_core.audio.formats import MULAW_8K
from patter_core.audio.transcode import Transcoder
from patter_core.providers.stt import LocalSTT
from patter_core.providers.tts import LocalTTS
from patter_core.testing import SimulatedTwilio

PHRASES = [
    "i would like to check my order status",
    "what are your opening hours",
    "thank you goodbye",
    "yes please",
]
ORDERS = {"caller": {"id": "A-1042", "status": "shipped", "eta": "Thursday"}}


def check_order(caller: str) -> dict[str, str]:
    """The receptionist's one tool: the caller's latest order (a stand-in for your system)."""
    return ORDERS["caller"]


async def receptionist(data: dict[str, Any]) -> str:
    """A tiny rule-based agent; swap in ``llm=OpenAILLM()`` for a real one."""
    text = data["text"].lower()
    if "order" in text or "status" in text:
        order = check_order(data["caller"])
        return (
            f"Your order {order['id']} has {order['status']} "
            f"and should arrive on {order['eta']}. Anything else?"
        )
    if "hour" in text or "open" in text:
        return "We are open from nine to five, Monday to Friday."
    if "bye" in text or "thank" in text:
        return "Thanks for calling. Goodbye!"
    return "Sorry, I did not catch that. You can ask about an order or our hours."


async def caller_audio(tts: LocalTTS, text: str) -> bytes:
    to_line = Transcoder(tts.output_format, MULAW_8K)
    pcm = b"".join([chunk async for chunk in tts.synthesize(text)])
    return to_line.convert(pcm) + to_line.flush()


async def agent_finished_speaking(call: Any, quiet_s: float = 1.0, limit_s: float = 20.0) -> None:
    """Wait for the agent to speak and then go quiet, as a polite caller would."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit_s):
            await call.wait_heard(len(call.heard) + 1, timeout=limit_s)
            while True:
                try:
                    await call.wait_heard(len(call.heard) + 1, timeout=quiet_s)
                except TimeoutError:
                    return


def say(line: str) -> None:
    print(line, flush=True)


async def run(root: Path) -> int:
    async with SimulatedTwilio(public_host="demo.patter.test") as sim:
        phone = Patter(
            carrier=Twilio(sim.account_sid, sim.auth_token, api_base_url=sim.api_url),
            phone_number="+15550001234",
            webhook_url=sim.public_host,
            persist=str(root),
        )
        agent = phone.agent(
            stt=LocalSTT(phrases=PHRASES),
            tts=LocalTTS(),
            first_message="Thanks for calling Acme. How can I help?",
            name="receptionist",
        )

        async def on_transcript(ev: dict[str, Any]) -> None:
            if ev.get("final", True):
                who = "caller" if ev["role"] == "caller" else "agent "
                cut = " [cut off]" if ev.get("interrupted") else ""
                say(f"  {who} | {ev['text']}{cut}")

        async def on_metrics(ev: dict[str, Any]) -> None:
            lat = ev["latency"]
            heard = lat.get("end_of_speech_to_first_heard_ms")
            parts = [f"turn {ev['turn']}", f"cost so far ${ev['total_cost']:.5f}"]
            if heard is not None:
                parts.append(f"end of caller speech -> agent heard {heard:.0f} ms")
            say("          " + ", ".join(parts))

        server = asyncio.create_task(
            phone.serve(
                agent,
                port=0,
                on_message=receptionist,
                on_transcript=on_transcript,
                on_metrics=on_metrics,
            )
        )
        await phone.ready
        assert phone.server is not None
        sim.server_url = f"http://127.0.0.1:{phone.server.port}"
        say(f"Patter is serving on 127.0.0.1:{phone.server.port} (public host {sim.public_host}).")
        say("A simulated caller dials +15550001234 ...\n")
        voice = LocalTTS(voice="en-us+m3")
        call = await sim.inbound_call(from_="+15550007777", to="+15550001234")
        for line in ("I would like to check my order status", "thank you goodbye"):
            await agent_finished_speaking(call)
            say(f"  (caller speaks: {line!r})")
            call.say(await caller_audio(voice, line))
        await agent_finished_speaking(call)
        await call.hangup()
        await asyncio.sleep(0.5)
        store = phone.store
        rows = store.list_calls(limit=1) if store is not None else []
        await phone.disconnect()
        await server
        if rows:
            row = rows[0]
            say(
                f"\nCall {row['call_id']}: {row['status']}, {row['duration_s']:.1f} s, "
                f"{row['turns']} turns, estimated cost ${row['cost_total']:.5f}"
            )
            say(f"Its files: {root / row['folder']}")
            say(f"Read them: jq . {root / row['folder'] / 'transcript.jsonl'}")
        say(f"{len(call.heard) / 8000:.1f} s of agent audio reached the caller.")
        say("\nRun it as a service: `patterd` with `patterctl` (docs/daemon.md).")
        return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = Path(tempfile.mkdtemp(prefix="patter-demo-"))
    say("Patter demo: one inbound call through the whole stack, offline.\n")
    return asyncio.run(run(root))


if __name__ == "__main__":
    sys.exit(main())
