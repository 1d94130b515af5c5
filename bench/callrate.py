"""Call churn: what starting and ending a call costs, and what the churn does to GC.

``bench.callload`` holds calls up and measures the steady media path; this
bench measures the other half of a call's life. ``--calls`` short calls
(``--frames`` 20 ms frames each, then ``stop``) are placed ``--concurrent`` at a
time against a real ``patterd`` pinned to core 0, and it reports the daemon's
CPU per call (webhook, media socket, session, echo, hang-up, the store's two
fsync'd metadata writes) and, from its ``/v1/metrics``, the full GC passes the
churn caused and the event loop's lag.

    PYTHONPATH=. .venv/bin/python -m bench.callrate --calls 600 --concurrent 20
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from bench.callload import measure_window, recorded_calls, running_daemon
from bench.soak import one_call


async def run(calls: int, concurrent: int, frames: int, pin: bool = True) -> dict[str, Any]:
    async with running_daemon("callrate-", pin) as (daemon, target):
        validator = RequestValidator(target.auth_token)
        numbers = iter(range(calls))
        lost = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

            async def lane() -> None:
                nonlocal lost
                for n in numbers:
                    lost += (await one_call(http, target, validator, n, frames))[1]

            window = await measure_window(
                daemon, asyncio.gather(*(lane() for _ in range(concurrent)))
            )
        recorded = await recorded_calls(daemon)
    return {
        "calls": calls,
        "seconds": window.seconds,
        "cpu_ms_per_call": 1000 * window.cpu_s / calls,
        "lost": lost,
        "recorded": recorded,
        "gc_full": window.gc_full,
        "gc_full_max_ms": window.gc_full_max_ms,
        "loop_lag_p99_ms": window.loop_lag_p99_ms,
        "steal_pct": window.steal_pct,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=600)
    ap.add_argument("--concurrent", type=int, default=20)
    ap.add_argument("--frames", type=int, default=50, help="20 ms frames per call")
    args = ap.parse_args(argv)
    r = asyncio.run(run(args.calls, args.concurrent, args.frames))
    print(
        "| calls | wall s | daemon CPU ms/call | lost frames | recorded "
        "| full GC passes, worst ms | loop lag p99 ms | steal % |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {r['calls']} | {r['seconds']:.1f} | {r['cpu_ms_per_call']:.1f} | {r['lost']} "
        f"| {r['recorded']} | {r['gc_full']}, ≤{r['gc_full_max_ms']:g} "
        f"| ≤{r['loop_lag_p99_ms']:g} | {r['steal_pct']:.0f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
