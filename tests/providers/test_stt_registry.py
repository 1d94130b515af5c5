from __future__ import annotations

from collections.abc import Iterator

import keyring
import keyring.backends.null
import pytest

from patterd.credentials import Credentials
from patterd.runtime import RuntimeFailure
from patterd.sdk_runtime import _llm, _stt, _tts


@pytest.fixture(autouse=True)
def _no_keyring() -> Iterator[None]:
    """Whatever keyring another test left in place is out of these lookups."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.null.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.mark.parametrize(
    "name", ["deepgram", "assemblyai", "cartesia", "soniox", "speechmatics", "whisper"]
)
def test_patterd_builds_each_stt_by_name(name: str) -> None:
    built = _stt(name, {"api_key": "k", "base_url": "ws://127.0.0.1:1"}, Credentials(environ={}))
    assert built.name == name and built.base_url == "ws://127.0.0.1:1"


def test_provider_keys_come_from_the_credential_chain_not_only_the_environment(
    tmp_path,
) -> None:
    """A key given as a systemd credential (or in the keyring) used to reach only
    LLMs of the OpenAI family: every STT and TTS read the environment alone."""
    (tmp_path / "DEEPGRAM_API_KEY").write_text("dg-from-systemd")
    (tmp_path / "ELEVENLABS_API_KEY").write_text("el-from-systemd")
    (tmp_path / "ANTHROPIC_API_KEY").write_text("an-from-systemd")
    creds = Credentials(environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert _stt("deepgram", {}, creds)._key == "dg-from-systemd"
    assert _tts("elevenlabs", {}, creds)._key == "el-from-systemd"
    assert _llm("anthropic", {}, creds)._key == "an-from-systemd"
    assert _stt("deepgram", {"api_key": "given"}, creds)._key == "given"


def test_a_provider_that_cannot_be_built_is_a_clear_start_up_error() -> None:
    with pytest.raises(RuntimeFailure, match="stt provider 'deepgram': deepgram: no API key"):
        _stt("deepgram", {}, Credentials(environ={}))
    with pytest.raises(RuntimeFailure, match=r"tts provider 'elevenlabs': .*output_format"):
        _tts("elevenlabs", {"api_key": "k", "output_format": "mp3"}, Credentials(environ={}))
    with pytest.raises(RuntimeFailure, match="tts provider 'local'"):
        _tts("local", {"no_such_option": 1}, Credentials(environ={}))
