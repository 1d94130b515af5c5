"""Fake HTTP streaming TTS: ElevenLabs ``/stream`` and OpenAI ``/audio/speech``.

Errors come in each vendor's shape: OpenAI ``{"error": {"message", "type", "param",
"code"}}`` (openai-python reads ``body["error"]``), ElevenLabs ``{"detail": {"status",
"message"}}`` for auth and FastAPI's ``{"detail": [{"loc", "msg", "type"}]}`` for a 422
(elevenlabs-python's ``HttpValidationError``). Requests are checked against the SDKs'
parameter lists (OpenAI's ``response_format`` and required fields, ElevenLabs'
``output_format`` values). The bad-key answers echo the key, so the client must mask it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from tests.fakes.servers import FakeServer

CHUNK = 320
CHUNKS = 50


ELEVENLABS_FORMATS = {
    *(f"mp3_{r}" for r in ("22050_32", "24000_48", "44100_32", "44100_64", "44100_96")),
    *(f"mp3_44100_{b}" for b in (128, 192)),
    *(f"pcm_{r}" for r in (8000, 16000, 22050, 24000, 32000, 44100, 48000)),
    "ulaw_8000",
    "alaw_8000",
    *(f"opus_48000_{b}" for b in (32, 64, 96, 128, 192)),
}
OPENAI_FORMATS = {"mp3", "opus", "aac", "flac", "wav", "pcm"}


def _eleven_invalid(msg: str, loc: list[str]) -> web.Response:
    body = {"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]}
    return web.json_response(body, status=422)


def _openai_error(status: int, message: str, kind: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.json_response(body, status=status)


async def _stream(fake: FakeServer, request: web.Request) -> web.StreamResponse:
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
        key = request.headers.get("xi-api-key")
        if key != fake.key:
            detail = {"status": "invalid_api_key", "message": f"Invalid API key: {key}"}
            return web.json_response({"detail": detail}, status=401)
        body = await request.json()
        fake.seen.bodies.append({"voice_id": request.match_info["voice_id"], **body})
        if fake.mode == "error":
            return _eleven_invalid("voice_settings.stability out of range", ["body"])
        if request.query.get("output_format", "mp3_44100_128") not in ELEVENLABS_FORMATS:
            return _eleven_invalid("unknown output_format", ["query", "output_format"])
        if not body.get("text"):
            return _eleven_invalid("field required", ["body", "text"])
        return await _stream(fake, request)

    fake = FakeServer({"/v1/text-to-speech/{voice_id}/stream": ("POST", stream)})
    return fake


def openai_server() -> FakeServer:
    async def speech(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {fake.key}":
            message = f"Incorrect API key provided: {auth.removeprefix('Bearer ')}"
            return _openai_error(401, message, "invalid_request_error")
        body: dict[str, object] = {}
        with contextlib.suppress(json.JSONDecodeError):
            body = await request.json()
        fake.seen.bodies.append(body)
        if fake.mode == "error":
            return _openai_error(400, "Input is too long", "invalid_request_error", "input")
        for field in ("model", "input", "voice"):
            if not body.get(field):
                return _openai_error(400, f"Missing {field}", "invalid_request_error", field)
        if body.get("response_format", "mp3") not in OPENAI_FORMATS:
            message = "Invalid response_format"
            return _openai_error(400, message, "invalid_request_error", "response_format")
        if body.get("instructions") and str(body["model"]).startswith("tts-1"):
            message = "instructions are not supported for this model"
            return _openai_error(400, message, "invalid_request_error", "instructions")
        return await _stream(fake, request)

    fake = FakeServer({"/v1/audio/speech": ("POST", speech)})
    return fake
