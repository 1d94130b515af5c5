"""Fake Rime ``/ws3``: query-string options, Bearer auth, JSON chunk/done/error events,
``eos``/``clear`` operations; closes normally once an utterance is spoken."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

from aiohttp import WSMsgType, web

from tests.fakes.tts_ws import CHUNKS, PACE_S, WsTTSFake, chunk, chunk_bytes, unauthorized


def rime_server() -> WsTTSFake:
    async def ws3(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if request.headers.get("Authorization") != f"Bearer {fake.key}":
            return unauthorized({"message": "Unauthorized"})
        q = request.query
        size = chunk_bytes(q.get("audioFormat", "mp3"), int(q.get("samplingRate", "24000")))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        ctx = ""
        stream: asyncio.Task[None] | None = None

        async def speak() -> None:
            if fake.mode == "error":
                await ws.send_json({"type": "error", "message": "speaker not found"})
                await ws.close()
                return
            for i in range(CHUNKS):
                if fake.mode in ("drop", "abort") and i == 3:
                    if fake.mode == "abort":  # the TCP connection just goes away
                        assert request.transport is not None
                        request.transport.close()
                        return
                    await ws.close(code=1011, message=b"upstream error")
                    return
                if fake.mode == "stall" and i == 1:
                    await asyncio.sleep(30)
                data = base64.b64encode(chunk(i, size)).decode()
                await ws.send_json({"type": "chunk", "contextId": ctx, "data": data})
                fake.count(ctx)
                await asyncio.sleep(PACE_S)
            await ws.send_json({"type": "done", "contextId": ctx})
            await ws.close()

        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                fake.text(msg.data)
                req = json.loads(msg.data)
                fake.seen.bodies.append(req)
                if "text" in req:
                    ctx = str(req.get("contextId") or "")
                elif req.get("operation") == "eos" and stream is None:
                    stream = asyncio.create_task(speak())
                elif req.get("operation") == "clear" and stream and not stream.done():
                    stream.cancel()
                    fake.stop(ctx)
        finally:
            if stream is not None and not stream.done():
                stream.cancel()
                fake.stop(ctx)
            if stream is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await stream
            fake.seen.disconnected = True
            fake.poke()
        return ws

    fake = WsTTSFake({"/ws3": ("GET", ws3)})
    return fake
