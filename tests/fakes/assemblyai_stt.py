"""Fake AssemblyAI v3 streaming: bare-key ``Authorization``, Turn/Termination."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.servers import FakeServer
from tests.fakes.ws_stt import Msgs, Vendor, is_json, stt_server


def _turn(text: str, *, end: bool, formatted: bool) -> dict[str, Any]:
    return {
        "type": "Turn",
        "turn_order": 0,
        "turn_is_formatted": formatted,
        "end_of_turn": end,
        "transcript": text,
        "end_of_turn_confidence": 0.9 if end else 0.1,
        "words": [],
    }


def _control(data: str, got: int, text: str) -> tuple[Msgs, bool]:
    if is_json(data, type="ForceEndpoint") and got:
        return [
            _turn(text.lower(), end=True, formatted=False),
            _turn(text, end=True, formatted=True),
        ], False
    if is_json(data, type="Terminate"):
        return [
            {"type": "Termination", "audio_duration_seconds": 1, "session_duration_seconds": 1}
        ], True
    return [], False


def _header_ok(request: web.Request, key: str) -> bool:
    return request.headers.get("Authorization") == key


VENDOR = Vendor(
    path="/v3/ws",
    header_ok=_header_ok,
    first_ok=None,
    auth_error=list,
    interim=lambda word: [_turn(word, end=False, formatted=False)],
    turn=lambda text: [
        _turn(text.lower(), end=True, formatted=False),
        _turn(text, end=True, formatted=True),
    ],
    control=_control,
    error=[{"error": "Audio too fast"}],
)


def assemblyai_server(text: str = "Hello there") -> FakeServer:
    return stt_server(VENDOR, text)
