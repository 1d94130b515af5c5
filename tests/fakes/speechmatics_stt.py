"""Fake Speechmatics RT: Bearer key, StartRecognition first, seq-numbered audio.

Like the service it answers ``RecognitionStarted``, acknowledges each audio
frame with ``AudioAdded`` (``seq_no`` from 1 on each connection), and sends
``EndOfTranscript`` only once ``EndOfStream.last_seq_no`` matches the frames it
got (a larger number would leave it waiting for audio that never comes).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.servers import FakeServer
from tests.fakes.ws_stt import Msgs, Vendor, is_json, stt_server


def _add(text: str, *, final: bool, forced: bool = False) -> dict[str, Any]:
    kind = "AddTranscript" if final else "AddPartialTranscript"
    out: dict[str, Any] = {
        "message": kind,
        "format": "2.9",
        "metadata": {"start_time": 0.0, "end_time": 1.0, "transcript": text},
        "results": [],
    }
    if forced:
        out["forced"] = True
    return out


def _end(*, forced: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "message": "EndOfUtterance",
        "metadata": {"start_time": 1.0, "end_time": 1.0},
    }
    if forced:
        out["forced"] = True
    return out


def _first_ok(data: str, key: str) -> bool:
    try:
        start = json.loads(data)
    except ValueError:
        return False
    return bool(
        start.get("message") == "StartRecognition"
        and start.get("audio_format", {}).get("type") == "raw"
        and "transcription_config" in start
    )


def _control(data: str, got: int, text: str, frames: int) -> tuple[Msgs, bool]:
    if is_json(data, message="ForceEndOfUtterance") and got:
        return [_add(text, final=True, forced=True), _end(forced=True)], False
    if is_json(data, message="EndOfStream"):
        if json.loads(data).get("last_seq_no") != frames:
            return [], False  # still waiting for audio up to last_seq_no
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
    turn=lambda text: [_add(text, final=True), _end()],
    control=_control,
    error=[{"message": "Error", "type": "invalid_model", "reason": "language not supported"}],
    ready=lambda: [{"message": "RecognitionStarted", "id": "r1", "orchestrator_version": "1"}],
    audio=lambda size, frames: [{"message": "AudioAdded", "seq_no": frames}],
)


def speechmatics_server(text: str = "hello there") -> FakeServer:
    return stt_server(VENDOR, text)
