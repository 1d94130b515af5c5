"""How much opening the engine socket at the voice webhook saves on the first words.

Runs OpenAIRealtime against the local fake Realtime server with an artificial
handshake latency. "early": ``start()`` at webhook time, the greeting is
requested when media starts. "late": ``start()`` and the greeting both wait
for media. Prints the median media-start → first agent audio for each.

    python -m bench.engine_first_turn [--connect-ms 300] [--media-ms 400] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from patter_core.audio.formats import MULAW_8K
from patter_core.brain import AgentAudio, BrainContext
from patter_core.engines.openai_realtime import OpenAIRealtime
from tests.fakes.openai_realtime import FakeOpenAIRealtime

KEY = "sk-bench"


async def first_audio_ms(fake: FakeOpenAIRealtime, *, early: bool, media_s: float) -> float:
    brain = OpenAIRealtime(api_key=KEY, base_url=fake.base_url)
    ctx = BrainContext(
        "CA", "+1", "+2", "inbound", system_prompt="Be brief.", carrier_format=MULAW_8K
    )
    starting = asyncio.create_task(brain.start(ctx)) if early else None
    await asyncio.sleep(media_s)  # the carrier sets up the media stream
    media_at = time.perf_counter()
    if starting is not None:
        await starting
    else:
        await brain.start(ctx)
    await brain.say("Hello, thanks for calling.")
    async for out in brain.outputs():
        if isinstance(out, AgentAudio):
            break
    elapsed = (time.perf_counter() - media_at) * 1000.0
    await brain.close()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect-ms", type=float, default=300.0)
    parser.add_argument("--media-ms", type=float, default=400.0)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    async with FakeOpenAIRealtime(key=KEY) as fake:
        fake.connect_delay_s = args.connect_ms / 1000.0
        results = {}
        for mode in ("late", "early"):
            runs = [
                await first_audio_ms(fake, early=mode == "early", media_s=args.media_ms / 1000.0)
                for _ in range(args.runs)
            ]
            results[mode] = statistics.median(runs)
    print(f"handshake latency {args.connect_ms:.0f} ms, media setup {args.media_ms:.0f} ms")
    print(f"late  (connect when media starts): first audio {results['late']:.1f} ms after media")
    print(f"early (connect at voice webhook):  first audio {results['early']:.1f} ms after media")
    print(f"gain: {results['late'] - results['early']:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
