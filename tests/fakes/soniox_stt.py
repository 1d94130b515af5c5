"""Fake Soniox real-time: key in the first (config) frame, token responses."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.servers import FakeServer
from tests.fakes.ws_stt import Close, Msgs, Vendor, is_json, stt_server


def _tokens(*tokens: tuple[str, bool], finished: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tokens": [{"text": t, "is_final": f} for t, f in tokens],
        "final_audio_proc_ms": 0,
        "total_audio_proc_ms": 0,
    }
    if finished:
        out["finished"] = True
    return out


def _words(text: str) -> list[tuple[str, bool]]:
    parts = text.split()
    return [(("" if i == 0 else " ") + w, True) for i, w in enumerate(parts)]


def _first_ok(data: str, key: str) -> bool:
    try:
        config = json.loads(data)
    except ValueError:
        return False
    return bool(
        config.get("api_key") == key
        and config.get("audio_format") == "pcm_s16le"
        and config.get("model")
        and config.get("sample_rate")
    )


def _control(data: str, got: int, text: str, frames: int) -> tuple[Msgs, bool]:
    if is_json(data, type="finalize") and got:
        return [_tokens(*_words(text), ("<fin>", True))], False
    if data == "":
        tail = _words(text) if got else []
        return [_tokens(*tail, finished=True)], True
    return [], False


VENDOR = Vendor(
    path="/transcribe-websocket",
    header_ok=lambda request, key: True,
    first_ok=_first_ok,
    auth_error=lambda: [{"error_code": 401, "error_message": "Invalid or expired API key."}],
    interim=lambda word: [_tokens((word, False))],
    turn=lambda text: [
        _tokens((text.split()[0], True)),
        _tokens(*_words(text)[1:], ("<end>", True)),
    ],
    control=_control,
    error=[{"error_code": 400, "error_message": "Invalid model."}],
    drop=[
        {"error_code": 503, "error_message": "Cannot continue request (code 1). Restart it."},
        Close(),
    ],
)


def soniox_server(text: str = "hello there") -> FakeServer:
    return stt_server(VENDOR, text)
