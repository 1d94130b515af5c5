"""The installed console scripts, run as a user runs them: the files pip wrote into
the virtual environment's bin folder, not the Python functions behind them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    script = BIN / argv[0]
    if not script.exists():
        pytest.fail(f"{script} is missing: is the project installed into this environment?")
    return subprocess.run(
        [str(script), *argv[1:]], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (("patterd", "--help"), "usage: patterd"),
        (("patterctl", "--help"), "usage: patterctl"),
        (("patter-tui", "--help"), "usage: patter-tui"),
    ],
)
def test_each_script_is_installed_and_answers_help(argv, expect):
    done = _run(*argv)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_patterd_version_matches_the_package():
    from patterd import __version__

    done = _run("patterd", "--version")
    assert done.returncode == 0
    assert __version__ in done.stdout


def test_patterctl_without_a_daemon_says_so_without_a_traceback(tmp_path):
    done = _run("patterctl", "--socket", str(tmp_path / "none.sock"), "status")
    assert done.returncode == 3  # documented: the daemon is not running
    assert "not running" in done.stderr
    assert "Traceback" not in done.stderr


def test_patterd_with_a_missing_config_fails_clearly(tmp_path):
    done = _run("patterd", "check-config", "--config", str(tmp_path / "missing.toml"))
    assert done.returncode != 0
    assert "file not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_seeds_imports_work_from_the_package_root() -> None:
    """The product pages write ``from getpatter import DeepgramSTT, ...``."""
    import patter_core
    from patter_core import AnthropicLLM, DeepgramSTT, ElevenLabsTTS, Patter, Twilio
    from patter_core.providers import llm, stt, tts

    assert (DeepgramSTT, AnthropicLLM, ElevenLabsTTS) == (
        stt.DeepgramSTT,
        llm.AnthropicLLM,
        tts.ElevenLabsTTS,
    )
    assert Patter and Twilio
    for module in (stt, tts, llm):
        for name in module.__all__:
            if name != "StreamSettings":
                assert getattr(patter_core, name) is getattr(module, name), name
    assert all(hasattr(patter_core, name) for name in patter_core.__all__)
