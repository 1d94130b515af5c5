"""Load benchmark: N concurrent Twilio calls against a real ``patterd`` running the echo brain.

The carrier side is played by worker processes: each call gets a signed voice
webhook, then its media WebSocket (``connected``, ``start``), then 20 ms µ-law
frames at real-time pace from one shared clock per worker, each call at one of
``--phases`` evenly spaced offsets within the 20 ms tick (independent calls are
not in step; ``--phases 1`` sends every frame of a tick at once, the worst
burst). The agent's audio is "played out" on that clock and marks are
acknowledged when playback reaches them. The daemon is pinned to core 0 and
the generator to the last core.

Measured, over a steady window after a warm-up:

- server CPU per call: utime+stime of the daemon from ``/proc/<pid>/stat``
  (CPU time, not wall time, so a shared machine skews it little);
- RSS per extra call: daemon RSS during the window minus RSS with no calls;
- echo latency: the k-th 160-byte frame sent → the moment k×160 bytes have
  come back (the echo path resamples 8k→16k→8k, so a couple of samples of
  filter delay are tolerated);
- frames lost: frames sent − frames echoed, after a drain;
- generator lag: how late each worker's send times ran (so the generator is
  never the bottleneck unnoticed);
- the daemon's own stalls, from its ``/v1/metrics`` before and after the
  window: event-loop lag p99 and the full GC passes (both as the upper bound
  of their histogram bucket), free of the generator's own noise;
- steal: the share of the daemon's core the hypervisor gave to other guests
  during the window (``/proc/stat``); on a shared VM it, not our code, sets
  the latency tail;
- after the calls end: the calls the store recorded, and RSS again (leak check).

    python -m bench.callload --calls 1,10,50,100,200,500 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from patter_core.testing import SimulatedTwilio, tone_mulaw
from patter_core.testing.daemon import NUMBER, daemon_config, free_port
from patter_core.testing.twilio import parse_stream_twiml, rejected_by
from patterd.client import ClientError, PatterClient

ROOT = Path(__file__).resolve().parents[1]
FRAME = 160
TICK = 0.02
TOLERANCE = 16  # bytes (2 ms) of resampler delay allowed when matching echoed frames
# Real calls start at unrelated moments, so their 20 ms frame clocks have unrelated
# phases: each worker spreads its calls over this many evenly spaced send times per
# tick (2 ms apart). 1 sends every call's frame at once, the worst case.
PHASES = 10
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def cpu_ticks(core: int | None) -> tuple[int, int]:
    """(steal, total) jiffies of one core (all cores for None), from /proc/stat."""
    name = "cpu" if core is None else f"cpu{core}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            values = [int(v) for v in fields[1:9]]  # user … steal; guest time is inside user
            return values[7], sum(values)
    return 0, 0


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of the core's time the hypervisor gave to someone else (stalls we cannot fix)."""
    total = after[1] - before[1]
    return 100 * (after[0] - before[0]) / total if total > 0 else 0.0


def proc_rss_kb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1024


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- the carrier side, in worker processes -------------------------------------------


@dataclass
class Target:
    server_url: str
    public_host: str
    account_sid: str
    auth_token: str


@dataclass(eq=False)
class Call:
    sid: str
    stream_sid: str
    ws: aiohttp.ClientWebSocketResponse
    sent_at: list[float] = field(default_factory=list)
    sent: int = 0
    echoed_bytes: int = 0
    matched: int = 0
    playout: list[Any] = field(default_factory=list)  # bytes lengths (int) and mark names (str)
    marks_acked: int = 0
    seq: int = 0
    latencies: list[float] = field(default_factory=list)
    measuring: bool = False


FRAMES = [
    base64.b64encode(f).decode()
    for f in (tone_mulaw(440.0, 1.0)[i : i + FRAME] for i in range(0, 8000, FRAME))
]


async def open_call(
    session: aiohttp.ClientSession, target: Target, validator: RequestValidator, n: int
) -> Call | None:
    """One inbound call up to its first media frame; None if the daemon refused it (busy)."""
    sid = "CA" + secrets.token_hex(16)
    params = {
        "CallSid": sid,
        "AccountSid": target.account_sid,
        "From": f"+1555{n:07d}",
        "To": NUMBER,
        "CallStatus": "ringing",
        "ApiVersion": "2010-04-01",
        "Direction": "inbound",
    }
    public = f"https://{target.public_host}/webhooks/twilio/voice"
    headers = {"X-Twilio-Signature": validator.compute_signature(public, params)}
    async with session.post(
        target.server_url + "/webhooks/twilio/voice", data=params, headers=headers
    ) as resp:
        twiml = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"voice webhook answered {resp.status}")
    if rejected_by(twiml) is not None:
        return None
    url, custom = parse_stream_twiml(twiml)
    path = url.split("://", 1)[1].split("/", 1)[1]
    ws = await session.ws_connect(
        target.server_url.replace("http://", "ws://") + "/" + path, autoping=True
    )
    call = Call(sid=sid, stream_sid="MZ" + secrets.token_hex(16), ws=ws)
    await ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    call.seq = 1
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": call.stream_sid,
        "start": {
            "accountSid": target.account_sid,
            "streamSid": call.stream_sid,
            "callSid": sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": custom,
        },
    }
    await ws.send_str(json.dumps(start))
    return call


async def receive(call: Call) -> None:
    loads = json.loads
    clock = time.monotonic
    async for msg in call.ws:
        if msg.type != aiohttp.WSMsgType.TEXT:
            continue
        data = loads(msg.data)
        kind = data.get("event")
        if kind == "media":
            p = data["media"]["payload"]
            n = len(p) * 3 // 4 - p[-2:].count("=")
            call.echoed_bytes += n
            call.playout.append(n)
            now = clock()
            while (
                call.matched < call.sent
                and call.echoed_bytes >= (call.matched + 1) * FRAME - TOLERANCE
            ):
                if call.measuring:
                    call.latencies.append(now - call.sent_at[call.matched])
                call.matched += 1
        elif kind == "mark":
            call.playout.append(str(data["mark"]["name"]))
        elif kind == "clear":
            call.playout.clear()


async def send_frame(call: Call, tick: int, payload: str) -> None:
    """Send the call's media frame for ``tick`` (base64 ``payload``), stamped for latency."""
    call.seq += 1
    call.sent += 1
    call.sent_at.append(time.monotonic())
    with contextlib.suppress(ConnectionError, RuntimeError):
        await call.ws.send_str(
            f'{{"event":"media","sequenceNumber":"{call.seq}","streamSid":'
            f'"{call.stream_sid}","media":{{"track":"inbound","chunk":"{tick + 1}",'
            f'"timestamp":"{tick * 20}","payload":"{payload}"}}}}'
        )


async def play(call: Call) -> None:
    """One tick of playback: 160 bytes of agent audio; acknowledge the marks it reaches."""
    budget = FRAME
    out = call.playout
    while out:
        head = out[0]
        if isinstance(head, str):
            out.pop(0)
            call.seq += 1
            call.marks_acked += 1
            await call.ws.send_str(
                f'{{"event":"mark","sequenceNumber":"{call.seq}","streamSid":"{call.stream_sid}",'
                f'"mark":{{"name":{json.dumps(head)}}}}}'
            )
            continue
        if budget <= 0:
            break
        take = min(head, budget)
        budget -= take
        if take == head:
            out.pop(0)
        else:
            out[0] = head - take


async def worker_main(
    target: Target,
    n_calls: int,
    first: int,
    conn: Any,
    warmup: float,
    seconds: float,
    phases: int = PHASES,
) -> None:
    validator = RequestValidator(target.auth_token)
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sem = asyncio.Semaphore(16)

        async def one(i: int) -> Call | None:
            async with sem:
                return await open_call(session, target, validator, first + i)

        offered = await asyncio.gather(*(one(i) for i in range(n_calls)))
        calls = [c for c in offered if c is not None]
        receivers = [asyncio.create_task(receive(c)) for c in calls]
        # The generator is Python too: keep its full GC passes (which would stall
        # every call it plays, and show up as daemon latency) off its start-up heap.
        gc.collect()
        gc.freeze()
        conn.send(("ready", len(calls)))
        t0 = conn.recv()  # wall-clock start shared by every worker
        await asyncio.sleep(max(t0 - time.time(), 0))
        start = time.monotonic()
        total_ticks = int((warmup + seconds) / TICK)
        warm_ticks = int(warmup / TICK)
        lags: list[float] = []
        cpu0 = time.process_time()
        slots = [calls[k::phases] for k in range(phases)]
        for tick in range(total_ticks):
            if tick == warm_ticks:
                for c in calls:
                    c.measuring = True
            frame = FRAMES[tick % len(FRAMES)]
            for k, group in enumerate(slots):
                due = start + tick * TICK + k * TICK / phases
                await asyncio.sleep(max(due - time.monotonic(), 0))
                if tick >= warm_ticks:
                    lags.append(time.monotonic() - due)
                for c in group:
                    if not c.ws.closed:
                        await send_frame(c, tick, frame)
                        await play(c)
        await asyncio.sleep(max(start + total_ticks * TICK - time.monotonic(), 0))
        for c in calls:
            c.measuring = False
        gen_cpu = time.process_time() - cpu0
        await asyncio.sleep(0.5)  # drain the echo
        conn.send(("sent", 0))
        conn.recv()  # the parent has read the daemon's figures; hang up
        for c in calls:
            c.seq += 1
            with contextlib.suppress(ConnectionError, RuntimeError):
                await c.ws.send_str(
                    json.dumps(
                        {
                            "event": "stop",
                            "sequenceNumber": str(c.seq),
                            "streamSid": c.stream_sid,
                            "stop": {"accountSid": target.account_sid, "callSid": c.sid},
                        }
                    )
                )
        for c in calls:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.ws.close(), 5)
        for r in receivers:
            r.cancel()
        await asyncio.gather(*receivers, return_exceptions=True)
        lat = [x for c in calls for x in c.latencies]
        lost = sum(max(0, c.sent - (c.echoed_bytes + TOLERANCE) // FRAME) for c in calls)
        conn.send(
            (
                "done",
                {
                    "calls": len(calls),
                    "refused": n_calls - len(calls),
                    "sent": sum(c.sent for c in calls),
                    "lost": lost,
                    "marks": sum(c.marks_acked for c in calls),
                    "lat": lat,
                    "lags": lags,
                    "gen_cpu": gen_cpu,
                },
            )
        )


def worker(
    target: Target, n_calls: int, first: int, conn: Any, warmup: float, seconds: float, phases: int
) -> None:
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    asyncio.run(worker_main(target, n_calls, first, conn, warmup, seconds, phases))


# --- the daemon and the driver --------------------------------------------------------


class Daemon:
    def __init__(
        self,
        root: Path,
        sim: SimulatedTwilio,
        port: int,
        core: int | None,
        event_loop: str = "asyncio",
        max_calls: int | None = None,
    ) -> None:
        self.root = root
        self.port = port
        self.core = core
        config = root / "patterd.toml"
        base = daemon_config(sim, port=port, history=root / "history", max_calls=max_calls)
        config.write_text(f'event_loop = "{event_loop}"\n\n{base}')
        self.config = config
        self.socket = root / "patterd.sock"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, env_extra: dict[str, str] | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        env["TWILIO_AUTH_TOKEN"] = "bench-auth-token"
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"
        env["PYTHONPATH"] = str(ROOT)
        env["XDG_RUNTIME_DIR"] = str(self.root / "xdg")
        env["XDG_CONFIG_HOME"] = str(self.root / "config")
        env.update(env_extra or {})
        log = (self.root / "patterd.log").open("w")
        core = self.core

        def pin() -> None:
            if core is not None:
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(0, {core})

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "patterd.cli", "run", "--config", str(self.config),
            "--socket", str(self.socket), "--runtime", "patterd.sdk_runtime:create_runtime",
            env=env, stdout=log, stderr=log, preexec_fn=pin, cwd=str(ROOT),
        )  # fmt: skip
        async with PatterClient(self.socket) as client, asyncio.timeout(60):
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"patterd exited: see {self.root / 'patterd.log'}")
                try:
                    await client.status()
                    return
                except ClientError:
                    await asyncio.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def recorded_calls(daemon: Daemon) -> int:
    async with PatterClient(daemon.socket) as client:
        total, offset = 0, 0
        for _ in range(1000):
            page = await client.calls(limit=200, offset=offset)
            total += len(page.calls)
            offset += len(page.calls)
            if len(page.calls) < 200:
                break
        return total


async def live_count(daemon: Daemon) -> int:
    async with PatterClient(daemon.socket) as client:
        return len(await client.live_calls())


async def wait_no_live(daemon: Daemon, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await live_count(daemon) == 0:
            return True
        await asyncio.sleep(0.25)
    return False


async def stall_buckets(daemon: Daemon) -> dict[str, dict[float, int]]:
    """The daemon's loop-lag and full-GC-pause histograms (cumulative bucket counts)."""
    async with PatterClient(daemon.socket) as client:
        text = await client.metrics()
    wanted = {
        "lag": ("patter_event_loop_lag_seconds_bucket{", ""),
        "gc2": ("patter_gc_pause_seconds_bucket{", 'generation="2",'),
    }
    out: dict[str, dict[float, int]] = {key: {} for key in wanted}
    for line in text.splitlines():
        for key, (prefix, labels) in wanted.items():
            if line.startswith(prefix + labels + "le="):
                le, count = line[len(prefix + labels) + 4 :].split('"} ')
                out[key][float(le)] = int(count)
    return out


def bucket_quantile(before: dict[float, int], after: dict[float, int], q: float) -> float:
    """Upper bound of the bucket holding the q-quantile of what was observed in between."""
    total = after.get(math.inf, 0) - before.get(math.inf, 0)
    if total <= 0:
        return 0.0
    for le in sorted(after):
        if after[le] - before.get(le, 0) >= q * total:
            return le
    return math.inf


@dataclass
class Window:
    """What the daemon did while a bench's workload ran (see ``measure_window``)."""

    cpu_s: float
    seconds: float
    steal_pct: float
    loop_lag_p99_ms: float
    gc_full: int
    gc_full_max_ms: float


async def measure_window(daemon: Daemon, workload: Awaitable[Any]) -> Window:
    """Await ``workload``, measuring the daemon's CPU, its stalls and the steal around it.

    The metrics are read outside the CPU-timed span, so reading them costs the window
    nothing.
    """
    stalls0 = await stall_buckets(daemon)
    cpu0, t0, ticks0 = proc_cpu_s(daemon.pid), time.monotonic(), cpu_ticks(daemon.core)
    await workload
    cpu1, t1, ticks1 = proc_cpu_s(daemon.pid), time.monotonic(), cpu_ticks(daemon.core)
    stalls1 = await stall_buckets(daemon)
    lag0, lag1, gc0, gc1 = stalls0["lag"], stalls1["lag"], stalls0["gc2"], stalls1["gc2"]
    return Window(
        cpu_s=cpu1 - cpu0,
        seconds=t1 - t0,
        steal_pct=steal_pct(ticks0, ticks1),
        loop_lag_p99_ms=1000 * bucket_quantile(lag0, lag1, 0.99),
        gc_full=gc1.get(math.inf, 0) - gc0.get(math.inf, 0),
        gc_full_max_ms=1000 * bucket_quantile(gc0, gc1, 1.0),
    )


@contextlib.asynccontextmanager
async def running_daemon(
    prefix: str, pin: bool = True, event_loop: str = "asyncio", max_calls: int | None = None
) -> AsyncIterator[tuple[Daemon, Target]]:
    """A real patterd on core 0 behind the simulated Twilio; this process moves to the last core."""
    cores = sorted(os.sched_getaffinity(0))
    core = cores[0] if pin and len(cores) > 1 else None
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        async with SimulatedTwilio(auth_token="bench-auth-token") as sim:
            port = free_port()
            sim.server_url = f"http://127.0.0.1:{port}"
            daemon = Daemon(Path(tmp), sim, port, core, event_loop, max_calls)
            if core is not None:
                os.sched_setaffinity(0, {cores[-1]})
            await daemon.start()
            try:
                yield (
                    daemon,
                    Target(sim.server_url, sim.public_host, sim.account_sid, sim.auth_token),
                )
            finally:
                await daemon.stop()


def recv_async(conn: Any, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError("a load worker did not answer")
    return conn.recv()


async def run_level(
    daemon: Daemon,
    target: Target,
    n: int,
    seconds: float,
    warmup: float,
    per_worker: int,
    settle: float = 2.0,
    phases: int = PHASES,
) -> dict[str, Any]:
    workers = max(1, math.ceil(n / per_worker))
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    base_recorded = await recorded_calls(daemon)
    await asyncio.sleep(settle / 2)
    rss_idle = proc_rss_kb(daemon.pid)
    fds_idle = proc_fds(daemon.pid)
    first = 0
    for w in range(workers):
        share = n // workers + (1 if w < n % workers else 0)
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(target, share, first, child, warmup, seconds, phases))
        p.start()
        first += share
        pipes.append(parent)
        procs.append(p)
    try:
        for conn in pipes:
            kind, _ = await asyncio.to_thread(recv_async, conn, 120)
            assert kind == "ready"
        t0 = time.time() + 0.5
        for conn in pipes:
            conn.send(t0)
        await asyncio.sleep(max(t0 - time.time(), 0) + warmup)
        window = await measure_window(daemon, asyncio.sleep(seconds))
        rss_live = proc_rss_kb(daemon.pid)
        fds_live = proc_fds(daemon.pid)
        for conn in pipes:
            kind, _ = await asyncio.to_thread(recv_async, conn, 60)
            assert kind == "sent"
        for conn in pipes:
            conn.send("hangup")
        results = []
        for conn in pipes:
            kind, data = await asyncio.to_thread(recv_async, conn, 120)
            assert kind == "done"
            results.append(data)
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    drained = await wait_no_live(daemon)
    await asyncio.sleep(settle)
    rss_after = proc_rss_kb(daemon.pid)
    fds_after = proc_fds(daemon.pid)
    recorded = await recorded_calls(daemon) - base_recorded
    lat = [x for r in results for x in r["lat"]]
    lags = [x for r in results for x in r["lags"]]
    cpu_pct = window.cpu_s / window.seconds * 100
    # CPU time per frame actually echoed in the window: unlike CPU %/call, it does not
    # flatter a daemon that is starved of its core (by other work) and echoes less.
    us_per_frame = window.cpu_s / max(len(lat), 1) * 1e6
    held = sum(r["calls"] for r in results)
    return {
        "us_per_frame": us_per_frame,
        "cpu_per_call_at_50fps": us_per_frame * 50 / 1e4,
        "calls": n,
        "workers": workers,
        "cpu_pct": cpu_pct,
        "cpu_per_call": cpu_pct / max(held, 1),
        "rss_idle": rss_idle,
        "rss_live": rss_live,
        "rss_per_call": (rss_live - rss_idle) / max(held, 1),
        "held": held,
        "refused": sum(r["refused"] for r in results),
        "rss_after": rss_after,
        "fds": (fds_idle, fds_live, fds_after),
        "p50": pct(lat, 0.5) * 1000,
        "p99": pct(lat, 0.99) * 1000,
        "sent": sum(r["sent"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "marks": sum(r["marks"] for r in results),
        "lag_p99": pct(lags, 0.99) * 1000,
        "lag_max": (max(lags) if lags else float("nan")) * 1000,
        "gen_cpu_pct": sum(r["gen_cpu"] for r in results) / (warmup + seconds) * 100,
        "recorded": recorded,
        "drained": drained,
        "steal_pct": window.steal_pct,
        "loop_lag_p99_ms": window.loop_lag_p99_ms,
        "gc_full": window.gc_full,
        "gc_full_max_ms": window.gc_full_max_ms,
    }


HEADER = (
    "| calls | daemon CPU % of a core | CPU %/call | CPU µs/echoed frame "
    "| RSS/extra call KB | echo p50 ms | "
    "echo p99 ms | frames sent | lost | gen lag p99/max ms | gen CPU % | recorded | "
    "RSS idle→live→after MB | daemon loop lag p99 ms | full GC passes, worst ms "
    "| steal % of the daemon's core | held / refused busy |"
)


def row(r: dict[str, Any]) -> str:
    return (
        f"| {r['calls']} | {r['cpu_pct']:.1f} | {r['cpu_per_call']:.3f} | "
        f"{r['us_per_frame']:.0f} (={r['cpu_per_call_at_50fps']:.3f}%) | "
        f"{r['rss_per_call']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['sent']} | "
        f"{r['lost']} | {r['lag_p99']:.1f}/{r['lag_max']:.1f} | {r['gen_cpu_pct']:.0f} | "
        f"{r['recorded']}/{r['calls']} | {r['rss_idle'] / 1024:.1f}→{r['rss_live'] / 1024:.1f}"
        f"→{r['rss_after'] / 1024:.1f} | ≤{r['loop_lag_p99_ms']:g} | "
        f"{r['gc_full']}, ≤{r['gc_full_max_ms']:g} | {r['steal_pct']:.0f} | "
        f"{r['held']} / {r['refused']} |"
    )


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    for event_loop in getattr(args, "loops", "asyncio").split(","):
        print(f"\n### patterd event loop: {event_loop}\n")
        results = await run_levels(args, event_loop)
    return results


async def run_levels(args: argparse.Namespace, event_loop: str) -> list[dict[str, Any]]:
    levels = [int(x) for x in args.calls.split(",")]
    results = []
    max_calls = getattr(args, "max_calls", None)
    async with running_daemon("callload-", not args.no_pin, event_loop, max_calls) as (
        daemon,
        target,
    ):
        print(HEADER)
        print("|---" * 18 + "|")
        for n in levels:
            r = await run_level(
                daemon,
                target,
                n,
                args.seconds,
                args.warmup,
                args.per_worker,
                getattr(args, "settle", 2.0),
                getattr(args, "phases", PHASES),
            )
            results.append(r)
            print(row(r), flush=True)
            if args.json:
                print(json.dumps({k: v for k, v in r.items()}), file=sys.stderr)
    if results:
        per_call = [r["cpu_per_call"] for r in results if r["calls"] >= 50] or [0.0]
        at200 = [r["p99"] for r in results if r["calls"] == 200]
        p99 = at200[0] if at200 else float("nan")
        print(f"\nmedian CPU/call over levels >= 50: {statistics.median(per_call):.3f}%")
        print(f"200-call echo p99: {p99:.2f} ms")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", default="1,10,50,100,200,500")
    ap.add_argument("--seconds", type=float, default=10.0, help="steady window per level")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--per-worker", type=int, default=250, help="calls per generator process")
    ap.add_argument("--settle", type=float, default=2.0, help="pause around each level, s")
    ap.add_argument(
        "--phases",
        type=int,
        default=PHASES,
        help="send times per 20 ms tick the calls are spread over (1: all at once)",
    )
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument(
        "--max-calls",
        type=int,
        default=None,
        help="the daemon's [server] max_calls: calls past it are refused with busy",
    )
    ap.add_argument(
        "--loops", default="asyncio,uvloop", help="patterd event loops to compare, in turn"
    )
    ap.add_argument("--json", action="store_true", help="also print raw results to stderr")
    args = ap.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
