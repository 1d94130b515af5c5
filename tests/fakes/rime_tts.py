"""Fake Rime ``/ws3``: query-string options, Bearer auth, JSON chunk/done/error events and
the ``flush``/``eos``/``clear`` operations, with Rime's segmentation rules.

As Rime documents ``/ws3``: text is buffered; with ``segment=never`` only ``flush`` (or
``eos``) turns the buffer into a synthesis, while the default ``bySentence`` starts one
for each finished sentence as the text arrives. Each synthesis ends with its own
``done``; a flush that arrives while one is playing waits its turn. ``eos`` speaks what
is left and then closes normally. ``clear`` drops the buffer and whatever is queued or
playing. An error is reported as ``{"type": "error", "message"}`` and the socket stays
open. Chunks are tagged with the most recent ``contextId``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re

from aiohttp import WSMsgType, web

from tests.fakes.tts_ws import CHUNKS, PACE_S, WsTTSFake, chunk, chunk_bytes, unauthorized

_SENTENCE = re.compile(r".*?[.?!](?:\s+|$)", re.S)


def rime_server() -> WsTTSFake:
    async def ws3(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if request.headers.get("Authorization") != f"Bearer {fake.key}":
            return unauthorized({"message": "Unauthorized"})
        q = request.query
        size = chunk_bytes(q.get("audioFormat", "mp3"), int(q.get("samplingRate", "24000")))
        segment = q.get("segment") or "bySentence"
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        ctx = ""
        buffer = ""
        queue: asyncio.Queue[str | None] = asyncio.Queue()  # None: close after the rest
        speaking = False

        async def speak(text: str) -> bool:
            """One synthesis; False when the fault modes cut the connection."""
            nonlocal speaking
            speaking = True
            for i in range(CHUNKS):
                if fake.mode in ("drop", "abort") and i == 3:
                    if fake.mode == "abort":  # the TCP connection just goes away
                        assert request.transport is not None
                        request.transport.close()
                    else:
                        await ws.close(code=1011, message=b"upstream error")
                    speaking = False
                    return False
                if fake.mode == "stall" and i == 1:
                    await asyncio.sleep(30)
                data = base64.b64encode(chunk(i, size)).decode()
                await ws.send_json({"type": "chunk", "contextId": ctx or None, "data": data})
                fake.count(ctx)
                await asyncio.sleep(PACE_S)
            await ws.send_json({"type": "done", "contextId": ctx or None})
            speaking = False
            return True

        async def synthesizer() -> None:
            while True:
                text = await queue.get()
                if text is None:
                    await ws.close()
                    return
                if not await speak(text):
                    return

        worker = asyncio.create_task(synthesizer())

        def synthesize(text: str) -> None:
            if text.strip():
                queue.put_nowait(text)

        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                fake.text(msg.data)
                req = json.loads(msg.data)
                fake.seen.bodies.append(req)
                if fake.mode == "error":
                    await ws.send_json({"type": "error", "message": "speaker not found"})
                    continue
                if "text" in req:
                    ctx = str(req.get("contextId") or "")
                    buffer += str(req["text"])
                    if segment == "immediate":
                        synthesize(buffer)
                        buffer = ""
                    elif segment == "bySentence":
                        for sentence in _SENTENCE.findall(buffer):
                            synthesize(sentence)
                            buffer = buffer[len(sentence) :]
                    continue
                operation = req.get("operation")
                if operation in ("flush", "eos"):
                    synthesize(buffer)
                    buffer = ""
                    if operation == "eos":
                        queue.put_nowait(None)
                elif operation == "clear":
                    buffer = ""
                    while not queue.empty():
                        queue.get_nowait()
                    worker.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker
                    if speaking:
                        speaking = False
                        fake.stop(ctx)
                    worker = asyncio.create_task(synthesizer())
                else:
                    await ws.send_json({"type": "error", "message": f"unknown message {req}"})
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            if speaking:
                fake.stop(ctx)
            fake.seen.disconnected = True
            fake.poke()
        return ws

    fake = WsTTSFake({"/ws3": ("GET", ws3)})
    return fake
