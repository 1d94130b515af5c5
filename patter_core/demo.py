"""``make demo``: a whole phone call on this machine, no accounts, keys or network.

It starts ``patterd`` with a demo config in a temporary folder and lets a
simulated caller (``patter_core.testing.SimulatedTwilio``, the same one the
tests use) dial in over the real stack: the signed voice webhook, TwiML, the
media WebSocket, the call session with barge-in detection, an offline
pipeline (PocketSphinx speech-to-text, a small receptionist written as an
``on_message`` handler, eSpeak NG text-to-speech), the store and the control
API, whose live event stream prints the transcript as it happens. The
caller's own words are synthesised with eSpeak too, and sent as 8 kHz µ-law
exactly as a phone line would carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from patter_core.audio.formats import MULAW_8K
from patter_core.audio.transcode import Transcoder
from patter_core.providers.tts import LocalTTS
from patter_core.testing import SimulatedTwilio
from patter_core.testing.daemon import NUMBER, daemon_config, free_port
from patterd.client import ClientError, PatterClient

PHRASES = [
    "i would like to check my order status",
    "what are your opening hours",
    "thank you goodbye",
    "yes please",
]
SOURCE_ROOT = str(Path(__file__).resolve().parents[1])
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


DEMO_AGENT = """\
[agents.receptionist]
first_message = "Thanks for calling Acme. How can I help?"

[agents.receptionist.pipeline]
stt = {{ provider = "local", options = {{ phrases = {phrases} }} }}
llm = {{ provider = "on_message", options = {{ handler = "patter_core.demo:receptionist" }} }}
tts = "local"
"""


def demo_config(sim: SimulatedTwilio, port: int, root: Path) -> str:
    return daemon_config(
        sim,
        port=port,
        history=root / "history",
        numbers={NUMBER: "receptionist"},
        agents=DEMO_AGENT.format(phrases=json.dumps(PHRASES)),
    )


async def start_daemon(root: Path, sim: SimulatedTwilio, port: int) -> asyncio.subprocess.Process:
    config = root / "patterd.toml"
    config.write_text(demo_config(sim, port, root))
    env = dict(os.environ)
    env["TWILIO_AUTH_TOKEN"] = sim.auth_token
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"  # never the user's keyring
    env["PYTHONPATH"] = SOURCE_ROOT
    log_file = (root / "patterd.log").open("w")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "patterd.cli",
        "run",
        "--config",
        str(config),
        "--socket",
        str(root / "patterd.sock"),
        env=env,
        stdout=log_file,
        stderr=log_file,
    )


async def wait_ready(client: PatterClient, proc: asyncio.subprocess.Process, root: Path) -> None:
    async with asyncio.timeout(60):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"patterd exited: see {root / 'patterd.log'}")
            try:
                await client.status()
                return
            except ClientError:
                await asyncio.sleep(0.2)


async def show_events(client: PatterClient) -> None:
    async for item in client.events():
        ev = item.event
        if ev is None:
            continue
        if ev.type == "transcript" and ev.final:
            who = "caller" if ev.role == "caller" else "agent "
            cut = " [cut off]" if ev.interrupted else ""
            say(f"  {who} | {ev.text}{cut}")
        elif ev.type == "turn.metrics":
            heard = ev.latency.end_of_speech_to_first_heard_ms
            line = f"          turn {ev.turn}: cost so far ${ev.total_cost:.5f}"
            if heard is not None:
                line += f", caller stopped -> agent heard in {heard:.0f} ms"
            say(line)
        elif ev.type == "call.started":
            say(f"  [call {ev.call_id[:8]} from {ev.caller}]")
        elif ev.type == "call.ended":
            say(f"  [call ended: {ev.reason}, {ev.duration_s:.1f} s]")


async def run(root: Path) -> int:
    async with SimulatedTwilio(public_host="demo.patter.test") as sim:
        port = free_port()
        sim.server_url = f"http://127.0.0.1:{port}"
        proc = await start_daemon(root, sim, port)
        client = PatterClient(root / "patterd.sock")
        watcher: asyncio.Task[None] | None = None
        try:
            await wait_ready(client, proc, root)
            status = await client.status()
            say(f"patterd {status.version} is up: control socket {root / 'patterd.sock'}")
            say(f"Watch it live in another terminal:  patter-tui --socket {root / 'patterd.sock'}")
            say("A simulated caller dials +15550001234 ...\n")
            watcher = asyncio.create_task(show_events(client))
            voice = LocalTTS(voice="en-us+m3")
            call = await sim.inbound_call(from_="+15550007777", to="+15550001234")
            for line in ("I would like to check my order status", "thank you goodbye"):
                await agent_finished_speaking(call)
                say(f"  (caller speaks: {line!r})")
                call.say(await caller_audio(voice, line))
            await agent_finished_speaking(call)
            await call.hangup()
            await asyncio.sleep(1.5)
            page = await client.calls(limit=1)
            if page.calls:
                row = page.calls[0]
                folder = root / "history" / row["folder"]
                say(
                    f"\nFrom the call history: {row['status']}, {row['duration_s']:.1f} s, "
                    f"{row['turns']} turns, estimated cost ${row['cost_total']:.5f}"
                )
                say(f"The call's files: {folder}")
                say(f"  jq . {folder / 'transcript.jsonl'}")
            say(f"{len(call.heard) / 8000:.1f} s of agent audio reached the caller.")
        finally:
            if watcher is not None:
                watcher.cancel()
            await client.close()
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
        say(f"patterd stopped (exit {proc.returncode}); its log: {root / 'patterd.log'}")
        return 0 if proc.returncode == 0 else 1


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = Path(tempfile.mkdtemp(prefix="patter-demo-"))
    say("Patter demo: patterd answers one phone call, entirely on this machine.\n")
    return asyncio.run(run(root))


if __name__ == "__main__":
    sys.exit(main())
