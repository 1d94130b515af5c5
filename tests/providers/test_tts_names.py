"""patterd builds the WebSocket TTS providers by name, passing options through."""

from __future__ import annotations

import pytest

from patter_core.providers.tts import LMNTTTS, CartesiaTTS, RimeTTS
from patterd.credentials import Credentials
from patterd.sdk_runtime import _tts


@pytest.mark.parametrize(
    ("name", "cls", "options"),
    [
        ("cartesia", CartesiaTTS, {"encoding": "pcm_mulaw", "sample_rate": 8000}),
        ("rime", RimeTTS, {"audio_format": "mulaw", "sample_rate": 8000}),
        ("lmnt", LMNTTTS, {"audio_format": "ulaw", "sample_rate": 8000}),
    ],
)
def test_built_by_name_with_options(name: str, cls: type, options: dict[str, object]) -> None:
    tts: CartesiaTTS | RimeTTS | LMNTTTS = _tts(
        name, {"api_key": "k", "base_url": "ws://127.0.0.1:9", **options}, Credentials(environ={})
    )
    assert isinstance(tts, cls)
    assert str(tts.output_format) == "mulaw/8000"
    assert tts.base_url == "ws://127.0.0.1:9"
