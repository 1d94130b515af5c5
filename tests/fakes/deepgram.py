"""Fake Deepgram ``/v1/listen``: Token auth, binary audio, JSON control and results."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.servers import FakeServer

TURN_BYTES = 32000  # one second of linear16 at 16 kHz ends an utterance


def _results(text: str, *, is_final: bool, speech_final: bool = False) -> dict[str, Any]:
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": 1.0,
        "start": 0.0,
        "is_final": is_final,
        "speech_final": speech_final,
        "from_finalize": False,
        "channel": {"alternatives": [{"transcript": text, "confidence": 0.97, "words": []}]},
        "metadata": {"request_id": "r1", "model_uuid": "m", "model_info": {"name": "nova-3"}},
    }


def deepgram_server(text: str = "hello there") -> FakeServer:
    async def listen(request: web.Request) -> web.StreamResponse:
        fake.record(request)
        if request.headers.get("Authorization") != f"Token {fake.key}":
            return web.json_response({"err_code": "INVALID_AUTH"}, status=401)
        if fake.mode == "error":
            return web.json_response({"err_code": "Bad Request", "err_msg": "bad"}, status=400)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        first = fake.seen.connections == 1
        got = 0
        sent_interim = False
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                got += len(msg.data)
                fake.seen.audio_bytes += len(msg.data)
                if fake.mode == "stall":
                    continue
                if fake.mode == "bad_audio":
                    await ws.close(code=1008, message=b"DATA-0000")
                    break
                if fake.mode == "drop" and first and got >= TURN_BYTES // 2:
                    await ws.close(code=1011, message=b"NET-0001")
                    fake.seen.disconnected = True
                    fake.poke()
                    return ws
                if not sent_interim:
                    sent_interim = True
                    await ws.send_json(_results(text.split()[0], is_final=False))
                if got >= TURN_BYTES:
                    got = 0
                    sent_interim = False
                    await ws.send_json(_results(text, is_final=True, speech_final=True))
                    await ws.send_json(
                        {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": 1}
                    )
            elif msg.type is WSMsgType.TEXT:
                fake.text(msg.data)
                kind = json.loads(msg.data).get("type")
                if fake.mode == "stall":
                    continue
                if kind == "Finalize" and got:
                    got = 0
                    await ws.send_json(_results(text, is_final=True))
                elif kind == "CloseStream":
                    if got:
                        await ws.send_json(_results(text, is_final=True))
                    await ws.send_json({"type": "Metadata", "request_id": "r1", "duration": 1.0})
                    await ws.close()
        fake.seen.disconnected = True
        return ws

    fake = FakeServer({"/v1/listen": ("GET", listen)})
    return fake
