"""Fake Cartesia ``/tts/websocket``: many contexts on one socket, chunk/done/error, cancel."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.tts_ws import CHUNKS, PACE_S, WsTTSFake, chunk, chunk_bytes, unauthorized


def cartesia_server() -> WsTTSFake:
    async def websocket(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if request.headers.get("X-API-Key") != fake.key or not request.headers.get(
            "Cartesia-Version"
        ):
            return unauthorized({"error": "Invalid API key", "title": "Unauthorized"})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        streams: dict[str, asyncio.Task[None]] = {}

        async def generate(ctx: str, req: dict[str, Any]) -> None:
            fmt = req["output_format"]
            size = chunk_bytes(fmt["encoding"], fmt["sample_rate"])
            if fake.mode == "error":
                await ws.send_json(
                    {
                        "type": "error",
                        "context_id": ctx,
                        "done": True,
                        "status_code": 400,
                        "title": "Invalid voice",
                        "message": "voice not found",
                        "error_code": "voice_not_found",
                    }
                )
                return
            for i in range(CHUNKS):
                if fake.mode in ("drop", "abort") and i == 3:
                    if fake.mode == "abort":  # the TCP connection just goes away
                        assert request.transport is not None
                        request.transport.close()
                        return
                    await ws.close(code=1011, message=b"internal error")
                    return
                if fake.mode == "stall" and i == 1:
                    await asyncio.sleep(30)
                data = base64.b64encode(chunk(i, size)).decode()
                await ws.send_json(
                    {
                        "type": "chunk",
                        "context_id": ctx,
                        "data": data,
                        "done": False,
                        "status_code": 206,
                        "step_time": 1.0,
                    }
                )
                fake.count(ctx)
                await asyncio.sleep(PACE_S)
            await ws.send_json(
                {"type": "done", "context_id": ctx, "done": True, "status_code": 200}
            )

        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                fake.text(msg.data)
                req = json.loads(msg.data)
                fake.seen.bodies.append(req)
                ctx = req["context_id"]
                if req.get("cancel"):
                    task = streams.pop(ctx, None)
                    if task is not None and not task.done():
                        task.cancel()
                        fake.stop(ctx)
                    continue
                streams[ctx] = asyncio.create_task(generate(ctx, req))
        finally:
            for task in streams.values():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*streams.values(), return_exceptions=True)
            fake.seen.disconnected = True
            fake.poke()
        return ws

    fake = WsTTSFake({"/tts/websocket": ("GET", websocket)})
    return fake
