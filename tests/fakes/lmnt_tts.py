"""Fake LMNT ``/v1/ai/speech/stream`` (speech sessions, protocol version 2).

The key comes in the first message; ``flush``/``reset``/``eof`` are commands
with nonces, acked with ``{"complete": …, "nonce"}``. Audio goes out as binary
frames; ``ulaw`` starts with a WAV header, as lmnt-python documents, split
across the first two frames so the client must reassemble it. After ``eof``
and the last audio the server closes normally. Errors are ``{"error": …}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct

from aiohttp import WSMsgType, web

from tests.fakes.tts_ws import CHUNKS, PACE_S, WsTTSFake, chunk, chunk_bytes


def ulaw_wav_header(sample_rate: int = 8000) -> bytes:
    """RIFF/WAVE with fmt (G.711 μ-law, tag 7), fact and a streaming data chunk."""
    fmt = struct.pack("<HHIIHHH", 7, 1, sample_rate, sample_rate, 1, 8, 0)
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, 0)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


def lmnt_server() -> WsTTSFake:
    async def stream_route(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        setup: dict[str, object] | None = None
        utterance = f"u{fake.seen.connections}"
        task: asyncio.Task[None] | None = None
        flush_nonce = 0

        async def speak(fmt: str, size: int) -> None:
            if fake.mode == "error":
                await ws.send_str(json.dumps({"error": "voice not found"}))
                await ws.close(code=1008)
                return
            header = ulaw_wav_header() if fmt == "ulaw" else b""
            if header:
                await ws.send_bytes(header[:20])
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
                await ws.send_bytes((header[20:] if i == 0 else b"") + chunk(i, size))
                fake.count(utterance)
                await asyncio.sleep(PACE_S)
            await ws.send_str(json.dumps({"complete": "flush", "nonce": flush_nonce}))
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
                    continue
                command = req.get("command")
                if command == "flush":
                    flush_nonce = int(req.get("nonce", 0))
                elif command == "eof" and task is None:
                    fmt = str(setup.get("format"))
                    size = chunk_bytes(fmt, int(str(setup["sample_rate"])))
                    task = asyncio.create_task(speak(fmt, size))
                elif command == "reset" and task is not None and not task.done():
                    task.cancel()
                    fake.stop(utterance)
                    await ws.send_str(json.dumps({"complete": "reset", "nonce": req.get("nonce")}))
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
