"""Fake LMNT ``/v1/ai/speech/stream``: the key in the first message, binary audio,
``{"error": …}`` text frames; closes normally after ``eof`` once all audio is out."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, web

from tests.fakes.tts_ws import CHUNKS, PACE_S, WsTTSFake, chunk, chunk_bytes


def lmnt_server() -> WsTTSFake:
    async def stream_route(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        setup: dict[str, object] | None = None
        utterance = f"u{fake.seen.connections}"
        task: asyncio.Task[None] | None = None

        async def speak(size: int) -> None:
            if fake.mode == "error":
                await ws.send_str(json.dumps({"error": "voice not found"}))
                await ws.close(code=1008)
                return
            for i in range(CHUNKS):
                if fake.mode in ("drop", "abort") and i == 3:
                    if fake.mode == "abort":  # the TCP connection just goes away
                        assert request.transport is not None
                        request.transport.close()
                        return
                    await ws.close(code=1011, message=b"internal")
                    return
                if fake.mode == "stall" and i == 1:
                    await asyncio.sleep(30)
                await ws.send_bytes(chunk(i, size))
                fake.count(utterance)
                await asyncio.sleep(PACE_S)
            await ws.send_str(json.dumps({"durations": [], "buffer_empty": True}))
            await ws.close()

        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                fake.text(msg.data)
                req = json.loads(msg.data)
                fake.seen.bodies.append(req)
                if setup is None:
                    setup = req
                    if req.get("X-API-Key") != fake.key:
                        # Echo the key back, as careless servers do: the client must mask it.
                        bad = req.get("X-API-Key")
                        await ws.send_str(json.dumps({"error": f"Invalid API key {bad}"}))
                        await ws.close(code=1008)
                        break
                elif req.get("eof") and task is None:
                    size = chunk_bytes(str(setup.get("format")), int(str(setup["sample_rate"])))
                    task = asyncio.create_task(speak(size))
        finally:
            if task is not None and not task.done():
                task.cancel()
                fake.stop(utterance)
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            fake.seen.disconnected = True
            fake.poke()
        return ws

    fake = WsTTSFake({"/v1/ai/speech/stream": ("GET", stream_route)})
    return fake
