"""Fake Speechmatics RT: Bearer key, StartRecognition first, seq-numbered audio."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.servers import FakeServer
from tests.fakes.ws_stt import Msgs, Vendor, is_json, stt_server


def _add(text: str, *, final: bool) -> dict[str, Any]:
    kind = "AddTranscript" if final else "AddPartialTranscript"
    return {
        "message": kind,
        "format": "2.9",
        "metadata": {"start_time": 0.0, "end_time": 1.0, "transcript": text},
        "results": [],
    }


def _first_ok(data: str, key: str) -> bool:
    try:
        start = json.loads(data)
    except ValueError:
        return False
    return bool(start.get("message") == "StartRecognition" and start.get("audio_format"))


def _control(data: str, got: int, text: str) -> tuple[Msgs, bool]:
    if is_json(data, message="ForceEndOfUtterance") and got:
        return [_add(text, final=True), {"message": "EndOfUtterance", "metadata": {}}], False
    if is_json(data, message="EndOfStream"):
        return [{"message": "EndOfTranscript"}], True
    return [], False


def _header_ok(request: web.Request, key: str) -> bool:
    return request.headers.get("Authorization") == f"Bearer {key}"


VENDOR = Vendor(
    path="/v2",
    header_ok=_header_ok,
    first_ok=_first_ok,
    auth_error=lambda: [{"message": "Error", "type": "protocol_error", "reason": "bad start"}],
    interim=lambda word: [_add(word, final=False)],
    turn=lambda text: [_add(text, final=True), {"message": "EndOfUtterance", "metadata": {}}],
    control=_control,
    error=[{"message": "Error", "type": "invalid_model", "reason": "language not supported"}],
)


def speechmatics_server(text: str = "hello there") -> FakeServer:
    return stt_server(VENDOR, text)
