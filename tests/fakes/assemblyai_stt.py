"""Fake AssemblyAI v3 streaming: bare-key ``Authorization``, Begin/Turn/Termination.

As the service does, it checks the key after the upgrade and fails in band: an
``Error`` frame whose ``error_code`` is then the close code (1008 for a bad
key, 3006 for bad input, 3007 for an audio frame outside 50-1000 ms). ``drop``
mode ends the first session as the 3-hour limit does (3008).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.servers import FakeServer
from tests.fakes.ws_stt import Close, Msgs, Vendor, is_json, stt_server

MIN_FRAME = 1600  # 50 ms of 16 kHz PCM16
MAX_FRAME = 32000  # 1000 ms


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


def _error(code: int, text: str) -> Msgs:
    return [{"type": "Error", "error_code": code, "error": text}, Close(code)]


def _control(data: str, got: int, text: str, frames: int) -> tuple[Msgs, bool]:
    if is_json(data, type="ForceEndpoint") and got:
        return [
            _turn(text.lower(), end=True, formatted=False),
            _turn(text, end=True, formatted=True),
        ], False
    if is_json(data, type="Terminate"):
        return [
            {"type": "Termination", "audio_duration_seconds": 1, "session_duration_seconds": 1}
        ], True
    if is_json(data, type="KeepAlive"):
        return [], False
    return _error(3006, f"Invalid Message Type: {data[:40]}"), False


def _audio(size: int, frames: int) -> Msgs:
    if not MIN_FRAME <= size <= MAX_FRAME:
        ms = size * 1000 // 32000
        return _error(3007, f"Input duration violation: {ms} ms. Expected between 50 and 1000 ms")
    return []


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
    error=_error(3006, "Invalid Sample Rate: must be a positive integer"),
    ready=lambda: [{"type": "Begin", "id": "s1", "expires_at": 1767225600}],
    audio=_audio,
    header_reject=_error(1008, "Unauthorized Connection: Invalid API key"),
    error_at_connect=True,
    drop=_error(3008, "Session Expired: Maximum session duration exceeded"),
)


def assemblyai_server(text: str = "Hello there") -> FakeServer:
    return stt_server(VENDOR, text)
