"""Fake Cartesia ``/tts/websocket``: many contexts on one socket, chunk/done/error, cancel.

The key is taken as ``X-API-Key`` or ``Authorization: Bearer`` and the API version as the
``Cartesia-Version`` header or the ``cartesia_version`` query parameter, as Cartesia's API
conventions allow. Every server frame carries ``status_code`` 206 as in Cartesia's own
WebSocket reference examples (``done`` included); errors carry the HTTP-style code.
A request missing a field the SDK marks required, or with an output format the SDK does
not list, is answered with an ``error`` frame for its context.
"""

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
        key = request.headers.get("X-API-Key") or request.headers.get(
            "Authorization", ""
        ).removeprefix("Bearer ")
        version = request.headers.get("Cartesia-Version") or request.query.get("cartesia_version")
        if key != fake.key or not version:
            return unauthorized({"error": "Invalid API key", "title": "Unauthorized"})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        streams: dict[str, asyncio.Task[None]] = {}

        async def generate(ctx: str, req: dict[str, Any]) -> None:
            problem = _invalid(req)
            if problem:
                await ws.send_json(
                    {
                        "type": "error",
                        "context_id": ctx,
                        "done": True,
                        "status_code": 400,
                        "title": "Invalid request",
                        "message": problem,
                        "error_code": "invalid_request",
                    }
                )
                return
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
                {"type": "done", "context_id": ctx, "done": True, "status_code": 206}
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


_ENCODINGS = ("pcm_f32le", "pcm_s16le", "pcm_mulaw", "pcm_alaw")
_RATES = (8000, 16000, 22050, 24000, 44100, 48000)


def _invalid(req: dict[str, Any]) -> str:
    """Why a generation request would be refused, or ``""`` (cartesia-python's
    ``GenerationRequest``: context_id, model_id, transcript, voice, output_format)."""
    for field in ("model_id", "transcript", "voice", "output_format"):
        if field not in req:
            return f"missing {field}"
    voice, fmt = req["voice"], req["output_format"]
    if not isinstance(voice, dict) or voice.get("mode") != "id" or not voice.get("id"):
        return "voice must be {mode: id, id}"
    if not isinstance(fmt, dict) or fmt.get("container") != "raw":
        return "output_format.container must be raw"
    if fmt.get("encoding") not in _ENCODINGS or fmt.get("sample_rate") not in _RATES:
        return "unsupported output_format"
    return ""
