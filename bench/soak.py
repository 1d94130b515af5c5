"""Soak: calls start and end continuously against a real ``patterd`` (echo brain).

``--concurrent`` calls are kept up; each lasts a random 2–8 s of real-time
20 ms frames, then hangs up (``stop``, close) and a new one dials in. Every
``--every`` seconds the daemon's RSS and open file descriptors are printed; at
the end, first versus last sample (flat is the target). It stops by itself
after ``--minutes`` (default 30).

    python -m bench.soak --minutes 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import time
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from bench.callload import (
    FRAME,
    FRAMES,
    TICK,
    TOLERANCE,
    Target,
    live_count,
    open_call,
    play,
    proc_cpu_s,
    proc_fds,
    proc_rss_kb,
    receive,
    recorded_calls,
    running_daemon,
    send_frame,
)


async def one_call(
    session: aiohttp.ClientSession,
    target: Target,
    validator: RequestValidator,
    n: int,
    ticks: int | None = None,
) -> tuple[int, int]:
    """One call of ``ticks`` 20 ms frames (a random 2–8 s by default); (sent, lost)."""
    call = await open_call(session, target, validator, n)
    if call is None:  # soak and churn run without max_calls: a refusal is a failure
        raise RuntimeError("the daemon refused a call (busy)")
    receiver = asyncio.create_task(receive(call))
    if ticks is None:
        ticks = random.randint(100, 400)
    start = time.monotonic()
    for tick in range(ticks):
        if call.ws.closed:
            break
        await send_frame(call, tick, FRAMES[tick % len(FRAMES)])
        await play(call)
        await asyncio.sleep(max(start + (tick + 1) * TICK - time.monotonic(), 0))
    await asyncio.sleep(0.3)
    call.seq += 1
    with contextlib.suppress(ConnectionError, RuntimeError):
        await call.ws.send_str(
            json.dumps(
                {"event": "stop", "sequenceNumber": str(call.seq), "streamSid": call.stream_sid}
            )
        )
    with contextlib.suppress(Exception):
        await asyncio.wait_for(call.ws.close(), 5)
    receiver.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await receiver
    return call.sent, max(0, call.sent - (call.echoed_bytes + TOLERANCE) // FRAME)


async def generator_main(target: Target, concurrent: int, seconds: float, conn: Any) -> None:
    validator = RequestValidator(target.auth_token)
    deadline = time.monotonic() + seconds
    stats = {"calls": 0, "failed": 0, "sent": 0, "lost": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        counter = iter(range(10**9))

        async def lane() -> None:
            while time.monotonic() < deadline:
                try:
                    sent, lost = await one_call(session, target, validator, next(counter))
                    stats["calls"] += 1
                    stats["sent"] += sent
                    stats["lost"] += lost
                except Exception:
                    stats["failed"] += 1
                    await asyncio.sleep(1.0)

        await asyncio.gather(*(lane() for _ in range(concurrent)))
    conn.send(stats)


def generator(target: Target, concurrent: int, seconds: float, conn: Any) -> None:
    cores = sorted(os.sched_getaffinity(0))
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {cores[-1]})
    asyncio.run(generator_main(target, concurrent, seconds, conn))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    samples: list[tuple[float, float, int, int]] = []
    async with running_daemon("soak-") as (daemon, target):
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=generator, args=(target, args.concurrent, seconds, child))
        try:
            proc.start()
            t0 = time.monotonic()
            print("   t s | RSS MB | fds | live | daemon CPU s", flush=True)
            while proc.is_alive() and time.monotonic() - t0 < seconds + 60:
                live = await live_count(daemon)
                rss, fds = proc_rss_kb(daemon.pid) / 1024, proc_fds(daemon.pid)
                t = time.monotonic() - t0
                samples.append((t, rss, fds, live))
                cpu = proc_cpu_s(daemon.pid)
                print(f"{t:6.0f} | {rss:6.1f} | {fds:3d} | {live:4d} | {cpu:.1f}", flush=True)
                await asyncio.sleep(args.every)
            stats = parent.recv() if parent.poll(30) else {}
            proc.join(30)
            await asyncio.sleep(2.0)
            end = (
                proc_rss_kb(daemon.pid) / 1024,
                proc_fds(daemon.pid),
                await live_count(daemon),
            )
            recorded = await recorded_calls(daemon)
        finally:
            if proc.is_alive():
                proc.kill()
    # Compare the second sample (warmed up) with the last, at comparable load.
    warm = samples[1] if len(samples) > 1 else samples[0]
    last = samples[-1]
    summary = {
        **stats,
        "recorded": recorded,
        "rss_warm_mb": warm[1],
        "rss_last_mb": last[1],
        "rss_after_mb": end[0],
        "fds_warm": warm[2],
        "fds_last": last[2],
        "fds_after": end[1],
        "live_after": end[2],
    }
    print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="soak: calls starting and ending continuously")
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--concurrent", type=int, default=20)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    args = ap.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60:
        ap.error("--minutes must be in (0, 1440]")
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
