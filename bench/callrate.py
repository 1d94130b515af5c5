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
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from bench.callload import (
    Daemon,
    Target,
    bucket_quantile,
    cpu_ticks,
    proc_cpu_s,
    recorded_calls,
    stall_buckets,
    steal_pct,
)
from bench.soak import one_call
from patter_core.testing import SimulatedTwilio
from patter_core.testing.daemon import free_port


async def run(calls: int, concurrent: int, frames: int, pin: bool = True) -> dict[str, Any]:
    cores = sorted(os.sched_getaffinity(0))
    daemon_core = cores[0] if pin and len(cores) > 1 else None
    with tempfile.TemporaryDirectory(prefix="callrate-") as tmp:
        async with SimulatedTwilio(auth_token="bench-auth-token") as sim:
            port = free_port()
            sim.server_url = f"http://127.0.0.1:{port}"
            daemon = Daemon(Path(tmp), sim, port, daemon_core)
            if daemon_core is not None:
                os.sched_setaffinity(0, {cores[-1]})
            await daemon.start()
            try:
                target = Target(sim.server_url, sim.public_host, sim.account_sid, sim.auth_token)
                validator = RequestValidator(target.auth_token)
                numbers = iter(range(calls))
                lost = 0
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

                    async def lane() -> None:
                        nonlocal lost
                        for n in numbers:
                            lost += (await one_call(http, target, validator, n, frames))[1]

                    stalls0 = await stall_buckets(daemon)
                    cpu0, t0, ticks0 = (
                        proc_cpu_s(daemon.pid),
                        time.monotonic(),
                        cpu_ticks(daemon_core),
                    )
                    await asyncio.gather(*(lane() for _ in range(concurrent)))
                    cpu1, t1, ticks1 = (
                        proc_cpu_s(daemon.pid),
                        time.monotonic(),
                        cpu_ticks(daemon_core),
                    )
                    stalls1 = await stall_buckets(daemon)
                recorded = await recorded_calls(daemon)
            finally:
                await daemon.stop()
    return {
        "calls": calls,
        "seconds": t1 - t0,
        "cpu_ms_per_call": 1000 * (cpu1 - cpu0) / calls,
        "lost": lost,
        "recorded": recorded,
        "gc_full": stalls1["gc2"].get(float("inf"), 0) - stalls0["gc2"].get(float("inf"), 0),
        "gc_full_max_ms": 1000 * bucket_quantile(stalls0["gc2"], stalls1["gc2"], 1.0),
        "loop_lag_p99_ms": 1000 * bucket_quantile(stalls0["lag"], stalls1["lag"], 0.99),
        "steal_pct": steal_pct(ticks0, ticks1),
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
