from __future__ import annotations

import pytest

from patterd.sdk_runtime import _stt


@pytest.mark.parametrize(
    "name", ["deepgram", "assemblyai", "cartesia", "soniox", "speechmatics", "whisper"]
)
def test_patterd_builds_each_stt_by_name(name: str) -> None:
    built = _stt(name, {"api_key": "k", "base_url": "ws://127.0.0.1:1"})
    assert built.name == name and built.base_url == "ws://127.0.0.1:1"
