"""A process that writes a call through a real bus + CallStore, then waits to be killed."""

import asyncio
import sys
from pathlib import Path

from patter_core.bus import EventBus
from patter_core.events import CallStarted, Transcript
from patter_core.store import CallStore


async def main(root: str, n: int) -> None:
    bus = EventBus()
    store = CallStore(Path(root))
    store.attach(bus)
    bus.publish(CallStarted(call_id="killed", direction="inbound", caller="+15550001111"))
    for i in range(n):
        bus.publish(Transcript(call_id="killed", role="caller", text=f"line {i}"))
    await store.flushed(n + 1)
    print("committed", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
