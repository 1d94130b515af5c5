"""Fake OpenAI ``/v1/audio/transcriptions``: Bearer auth, multipart WAV in, JSON text out."""

from __future__ import annotations

import asyncio
import io
import wave

from aiohttp import web

from tests.fakes.servers import FakeServer


def whisper_server(text: str = "hello there") -> FakeServer:
    async def transcribe(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if request.headers.get("Authorization") != f"Bearer {fake.key}":
            body = {
                "error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            }
            return web.json_response(body, status=401)
        form = await request.post()
        upload = form.get("file")
        assert isinstance(upload, web.FileField)
        with wave.open(io.BytesIO(upload.file.read()), "rb") as wav:
            assert wav.getframerate() == 16000 and wav.getsampwidth() == 2
            fake.seen.audio_bytes += wav.getnframes() * 2
        fake.seen.bodies.append({k: v for k, v in form.items() if isinstance(v, str)})
        fake.poke()
        if fake.mode == "error":
            body = {"error": {"message": "Invalid file format.", "type": "invalid_request_error"}}
            return web.json_response(body, status=400)
        if fake.mode == "stall":
            await asyncio.sleep(30)
        if fake.mode == "drop":
            assert request.transport is not None
            request.transport.close()  # the connection dies before a reply
            fake.seen.disconnected = True
            return web.Response()
        return web.json_response({"text": text})

    fake = FakeServer({"/v1/audio/transcriptions": ("POST", transcribe)})
    return fake
