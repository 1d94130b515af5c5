"""Fake LMNT ``/v1/ai/speech/stream`` (speech sessions, LMNT API 1.1 as lmnt-python 2.6 speaks it).

The first message carries the key (``X-API-Key``), ``lmnt-version`` and the voice and
format; the server answers ``{"type": "ready", "request_id"}``. Later messages are typed:
``text`` is buffered, ``flush`` (with a nonce) speaks the buffer and is answered with
``flush_complete`` once its audio is out, ``reset`` drops the buffer and what is playing
(``reset_complete``), ``finish`` closes normally once everything is sent. Audio goes out
as binary frames; ``ulaw`` starts with a WAV header, as lmnt-python documents, split
across the first two frames so the client must reassemble it. Errors are
``{"type": "error", "error": {"type", "message"}, "request_id"}``; a message of an older
protocol (no ``type``, or ``command``) is refused the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import uuid

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
        request_id = uuid.uuid4().hex
        setup: dict[str, object] | None = None
        utterance = f"u{fake.seen.connections}"
        buffer = ""
        queue: asyncio.Queue[tuple[str, int] | None] = asyncio.Queue()  # None: finish
        speaking = False

        async def error(kind: str, message: str) -> None:
            body = {"type": kind, "message": message}
            await ws.send_str(
                json.dumps({"type": "error", "error": body, "request_id": request_id})
            )

        async def speak(fmt: str, size: int, first: bool) -> bool:
            """One flush's audio; False when the fault modes cut the connection."""
            nonlocal speaking
            speaking = True
            header = ulaw_wav_header() if fmt == "ulaw" and first else b""
            if header:
                await ws.send_bytes(header[:20])
            for i in range(CHUNKS):
                if fake.mode in ("drop", "abort") and i == 3:
                    if fake.mode == "abort":  # the TCP connection just goes away
                        assert request.transport is not None
                        request.transport.close()
                    else:
                        await ws.close(code=1011, message=b"internal")
                    speaking = False
                    return False
                if fake.mode == "stall" and i == 1:
                    await asyncio.sleep(30)
                await ws.send_bytes((header[20:] if i == 0 else b"") + chunk(i, size))
                fake.count(utterance)
                await asyncio.sleep(PACE_S)
            speaking = False
            return True

        async def synthesizer(fmt: str, size: int) -> None:
            first = True
            while True:
                item = await queue.get()
                if item is None:
                    await ws.close()
                    return
                text, nonce = item
                if text.strip():
                    if not await speak(fmt, size, first):
                        return
                    first = False
                await ws.send_str(json.dumps({"type": "flush_complete", "nonce": nonce}))

        worker: asyncio.Task[None] | None = None
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
                        await error(
                            "authentication_error", f"Invalid API key {req.get('X-API-Key')}"
                        )
                        await ws.close(code=1008)
                        break
                    if req.get("lmnt-version") != "1.1" or not req.get("voice"):
                        await error("invalid_request_error", "init needs lmnt-version and voice")
                        await ws.close(code=1008)
                        break
                    if fake.mode == "error":
                        await error("not_found_error", "voice not found")
                        await ws.close(code=1008)
                        break
                    fmt = str(req.get("format") or "mp3")
                    size = chunk_bytes(fmt, int(str(req.get("sample_rate") or 24000)))
                    worker = asyncio.create_task(synthesizer(fmt, size))
                    await ws.send_str(json.dumps({"type": "ready", "request_id": request_id}))
                    continue
                kind = req.get("type")
                if kind == "text":
                    buffer += str(req.get("text", ""))
                elif kind == "flush":
                    queue.put_nowait((buffer, int(req.get("nonce", 0))))
                    buffer = ""
                elif kind == "finish":
                    if buffer:
                        queue.put_nowait((buffer, 0))
                        buffer = ""
                    queue.put_nowait(None)
                elif kind == "reset" and worker is not None:
                    buffer = ""
                    while not queue.empty():
                        queue.get_nowait()
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                    if speaking:
                        speaking = False
                        fake.stop(utterance)
                    worker = asyncio.create_task(synthesizer(fmt, size))
                    nonce = req.get("nonce")
                    await ws.send_str(json.dumps({"type": "reset_complete", "nonce": nonce}))
                else:
                    await error("invalid_request_error", f"unknown message {msg.data[:80]}")
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            if speaking:
                fake.stop(utterance)
            fake.seen.disconnected = True
            fake.poke()
        return ws

    fake = WsTTSFake({"/v1/ai/speech/stream": ("GET", stream_route)})
    return fake
