"""The floor under the media path: what a bare WebSocket echo costs per frame.

`bench.callload` measures the whole daemon. This bench answers the question
its figures raise: how much of the per-frame CPU is the WebSocket transport
itself, before any session work? It runs, side by side in one process tree,
minimal servers that only echo Twilio-shaped media messages (parse the JSON,
decode the payload, encode it back, send it), each pinned to core 0, against
one generator process pinned to the last core that holds N sockets at 50
frames a second.

Servers:

- ``aiohttp``: an aiohttp WebSocket handler, as patterd's media sockets are;
- ``aiohttp-nojson``: the same, echoing the text without parsing it (the
  transport alone);
- ``sansio``: an ``asyncio.Protocol`` driving the ``websockets`` sans-I/O
  server, answering inside ``data_received`` with no task or queue per frame;
- ``picows``: the Cython WebSocket library ``picows``, whose frames arrive in a
  callback (no task, future or queue per frame, parsing in C): the cheapest
  socket termination an asyncio program can have, so the floor of the floor.

    PYTHONPATH=. .venv/bin/python -m bench.wsfloor --calls 100,200 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.callload import proc_cpu_s
from patter_core.testing.daemon import free_port

FRAME_BYTES = 160
TICK_S = 0.020
VARIANTS = ("aiohttp", "aiohttp-nojson", "sansio", "picows")


def _echo(text: str | bytes) -> str | None:
    msg = orjson.loads(text)
    if msg.get("event") != "media":
        return None
    audio = base64.b64decode(msg["media"]["payload"])
    payload = base64.b64encode(audio).decode()
    return f'{{"event":"media","streamSid":"{msg["streamSid"]}","media":{{"payload":"{payload}"}}}}'


async def _serve_aiohttp(port: int, parse: bool) -> None:
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            out = _echo(msg.data) if parse else msg.data
            if out is not None:
                await ws.send_str(out)
        return ws

    app = web.Application()
    app.router.add_get("/media", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


class _SansIO(asyncio.Protocol):
    def __init__(self) -> None:
        from websockets.server import ServerProtocol

        self.ws = ServerProtocol()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Request

        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Request):
                ws.send_response(ws.accept(event))
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                out = _echo(bytes(event.data))
                if out is not None:
                    ws.send_text(out.encode())
        assert self.transport is not None
        self.transport.writelines(ws.data_to_send())
        if ws.close_expected():
            self.transport.close()


async def _serve_sansio(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_SansIO, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _serve_picows(port: int) -> None:
    import picows

    class Echo(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                out = _echo(frame.get_payload_as_bytes())
                if out is not None:
                    transport.send(picows.WSMsgType.TEXT, out.encode())
            elif frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    server = await picows.ws_create_server(lambda _req: Echo(), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def serve(variant: str, port: int) -> None:
    if variant == "picows":
        asyncio.run(_serve_picows(port))
    elif variant == "sansio":
        asyncio.run(_serve_sansio(port))
    else:
        asyncio.run(_serve_aiohttp(port, parse=variant == "aiohttp"))


async def _generate(
    port: int, calls: int, seconds: float, warmup: float, server_pid: int
) -> dict[str, Any]:
    import aiohttp

    sent = 0
    got = 0
    lat: list[float] = []
    stamps: list[dict[int, float]] = [{} for _ in range(calls)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [await http.ws_connect(f"http://127.0.0.1:{port}/media") for _ in range(calls)]

        async def read(i: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal got
            async for msg in ws:
                seq = int.from_bytes(
                    base64.b64decode(orjson.loads(msg.data)["media"]["payload"])[:4]
                )
                t0 = stamps[i].pop(seq, None)
                if t0 is not None:
                    got += 1
                    lat.append(time.monotonic() - t0)

        readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets)]
        start = time.monotonic()
        seq = 0
        window: tuple[float, float] | None = None
        end: tuple[float, float] = (0.0, 0.0)
        try:
            while (now := time.monotonic()) < start + warmup + seconds:
                seq += 1
                counting = now >= start + warmup
                if counting and window is None:
                    window = (now, proc_cpu_s(server_pid))
                    lat.clear()
                    for pending in stamps:
                        pending.clear()
                    got = 0
                    sent = 0
                audio = seq.to_bytes(4) + b"\xff" * (FRAME_BYTES - 4)
                text = orjson.dumps(
                    {
                        "event": "media",
                        "streamSid": "MZ" + "0" * 32,
                        "media": {"payload": base64.b64encode(audio).decode()},
                    }
                ).decode()
                for i, ws in enumerate(sockets):
                    stamps[i][seq] = time.monotonic()
                    await ws.send_str(text)
                sent += calls
                await asyncio.sleep(max(0.0, start + seq * TICK_S - time.monotonic()))
            end = (time.monotonic(), proc_cpu_s(server_pid))
            await asyncio.sleep(0.5)
        finally:
            for task in readers:
                task.cancel()
            await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets)), 10)
    lat.sort()
    w0, cpu0 = window or end
    w1, cpu1 = end
    return {
        "core_pct": 100 * (cpu1 - cpu0) / max(w1 - w0, 1e-9),
        "us_per_frame": 1e6 * (cpu1 - cpu0) / max(got, 1),
        "sent": sent,
        "echoed": got,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1000 * lat[int(len(lat) * 0.99)] if lat else float("nan"),
    }


def _pin(core: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that pins the child to ``core`` (-1: the last), or None."""
    cores = sorted(os.sched_getaffinity(0))
    if core is None or len(cores) < 2:
        return None
    chosen = cores[core]
    return lambda: os.sched_setaffinity(0, {chosen})


def run_level(
    variant: str, calls: int, seconds: float, warmup: float, pin: bool = True
) -> dict[str, Any]:
    port = free_port()
    me = [sys.executable, "-m", "bench.wsfloor"]
    server = subprocess.Popen(
        [*me, "--serve", variant, "--port", str(port)], preexec_fn=_pin(0 if pin else None)
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the {variant} server did not start") from None
                time.sleep(0.05)
        gen = subprocess.run(
            [
                *me,
                "--generate",
                str(calls),
                "--port",
                str(port),
                "--seconds",
                str(seconds),
                "--warmup",
                str(warmup),
                "--server-pid",
                str(server.pid),
            ],
            capture_output=True,
            text=True,
            timeout=warmup + seconds + 60,
            check=True,
            preexec_fn=_pin(-1 if pin else None),
        )
        result: dict[str, Any] = orjson.loads(gen.stdout.strip().splitlines()[-1])
    finally:
        server.kill()
        server.wait()
    result.update(variant=variant, calls=calls)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", default="100,200")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    if args.generate:
        out = asyncio.run(
            _generate(args.port, args.generate, args.seconds, args.warmup, args.server_pid)
        )
        print(orjson.dumps(out).decode(), flush=True)
        return 0
    print("| server | calls | CPU % of a core | CPU µs/echoed frame | echo p50 / p99 ms | lost |")
    print("|---|---:|---:|---:|---:|---:|")
    for calls in (int(c) for c in args.calls.split(",")):
        for variant in args.variants.split(","):
            r = run_level(variant, calls, args.seconds, args.warmup)
            print(
                f"| {variant} | {calls} | {r['core_pct']:.1f} | {r['us_per_frame']:.1f} "
                f"| {r['p50_ms']:.2f} / {r['p99_ms']:.2f} | {r['sent'] - r['echoed']} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
