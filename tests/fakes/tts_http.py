"""Fake HTTP streaming TTS: ElevenLabs ``/stream`` and OpenAI ``/audio/speech``."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from tests.fakes.servers import FakeServer

CHUNK = 320
CHUNKS = 50


async def _stream(fake: FakeServer, request: web.Request) -> web.StreamResponse:
    if fake.mode == "error":
        return web.json_response({"detail": {"status": "invalid", "message": "bad"}}, status=422)
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await resp.prepare(request)
    try:
        for i in range(CHUNKS):
            if fake.mode == "drop" and i == 3:
                assert request.transport is not None
                request.transport.close()
                return resp
            if fake.mode == "stall" and i == 1:
                await asyncio.sleep(30)
            await resp.write(bytes([i % 256]) * CHUNK)
            await asyncio.sleep(0.01)
        await resp.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        fake.seen.disconnected = True
        fake.poke()
        raise
    return resp


def elevenlabs_server() -> FakeServer:
    async def stream(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if request.headers.get("xi-api-key") != fake.key:
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        fake.seen.bodies.append(
            {"voice_id": request.match_info["voice_id"], **await request.json()}
        )
        return await _stream(fake, request)

    fake = FakeServer({"/v1/text-to-speech/{voice_id}/stream": ("POST", stream)})
    return fake


def openai_server() -> FakeServer:
    async def speech(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if request.headers.get("Authorization") != f"Bearer {fake.key}":
            body = {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
            return web.json_response(body, status=401)
        with contextlib.suppress(json.JSONDecodeError):
            fake.seen.bodies.append(await request.json())
        return await _stream(fake, request)

    fake = FakeServer({"/v1/audio/speech": ("POST", speech)})
    return fake
