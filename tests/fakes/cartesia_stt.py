"""Fake Cartesia STT: ``X-API-Key`` + ``Cartesia-Version``, plain-text controls.

``finalize`` is answered by the transcript and ``flush_done``, ``done`` by ``done``
(API version 2025-04-16; newer versions also take ``close``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.servers import FakeServer
from tests.fakes.ws_stt import Msgs, Vendor, stt_server


def _transcript(text: str, *, final: bool) -> dict[str, Any]:
    return {
        "type": "transcript",
        "request_id": "r1",
        "text": text,
        "is_final": final,
        "duration": 1.0,
        "language": "en",
    }


def _control(data: str, got: int, text: str, frames: int) -> tuple[Msgs, bool]:
    if data == "finalize" and got:
        return [_transcript(text, final=True), {"type": "flush_done", "request_id": "r1"}], False
    if data in ("done", "close"):
        return [{"type": "done", "request_id": "r1"}], True
    return [], False


def _header_ok(request: web.Request, key: str) -> bool:
    h = request.headers
    return h.get("X-API-Key") == key and bool(h.get("Cartesia-Version"))


VENDOR = Vendor(
    path="/stt/websocket",
    header_ok=_header_ok,
    first_ok=None,
    auth_error=list,
    interim=lambda word: [_transcript(word, final=False)],
    turn=lambda text: [_transcript(text, final=True)],
    control=_control,
    error=[
        {
            "type": "error",
            "status_code": 400,
            "title": "Invalid request",
            "message": "unsupported sample rate",
            "request_id": "r1",
        }
    ],
)


def cartesia_server(text: str = "hello there") -> FakeServer:
    return stt_server(VENDOR, text)
