"""patterd refuses to start with one clear line, never a traceback.

Each case runs the real daemon as a process (the SDK runtime, a Twilio carrier
pointed at a closed port) and reads what an operator would see on stderr.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon_proc import base_env, run_tool
from tests.support.fixtures import short_tmp_dir

CONFIG = """\
[carrier]
kind = "twilio"
account_sid = "AC00000000000000000000000000000000"
api_base_url = "http://127.0.0.1:9"
[server]
bind = "127.0.0.1"
port = {port}
public_host = "example.invalid"
[store]
root = "{root}"
[numbers]
"+15550001234" = "front"
[agents.front]
{agent}
"""
ECHO = 'engine = "echo"'


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    tmp: Path,
    *,
    token: bool = True,
    port: int | None = None,
    root: Path | None = None,
    agent: str = ECHO,
    socket_path: Path | None = None,
    extra: tuple[str, ...] = (),
    env_extra: dict[str, str] | None = None,
) -> tuple[int, str]:
    config = tmp / "patterd.toml"
    config.write_text(
        CONFIG.format(port=port or _free_port(), root=root or tmp / "store", agent=agent)
    )
    env = base_env(tmp)
    if token:
        env["TWILIO_AUTH_TOKEN"] = "test-token"
    env.update(env_extra or {})
    sock = socket_path or tmp / "run" / "patterd.sock"
    r = run_tool(
        "patterd.cli", "run", "--config", str(config), "--socket", str(sock), *extra, env=env
    )
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    return r.returncode, lines[-1] if lines else ""


def test_a_missing_carrier_token_says_where_patterd_looks(short_tmp: Path) -> None:
    rc, last = _start(short_tmp, token=False)
    assert rc == 1
    assert "the carrier needs TWILIO_AUTH_TOKEN" in last and "credential chain" in last


def test_a_port_in_use(short_tmp: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        rc, last = _start(short_tmp, port=taken.getsockname()[1])
    assert rc == 1 and "cannot start" in last and "address already in use" in last


def test_a_store_root_that_cannot_be_a_folder(short_tmp: Path) -> None:
    (short_tmp / "file").write_text("")
    rc, last = _start(short_tmp, root=short_tmp / "file" / "store")
    assert rc == 1 and "Not a directory" in last
    assert "never retrieved" not in last


def test_a_provider_without_its_key(short_tmp: Path) -> None:
    agent = '[agents.front.pipeline]\nstt = "whisper"\ntts = "local"\nllm = "openai"\n'
    rc, last = _start(short_tmp, agent=agent)
    assert rc == 1 and "stt provider 'whisper'" in last and "no API key" in last


def test_a_socket_path_too_long_is_refused_before_the_carrier_is_touched(
    short_tmp: Path,
) -> None:
    deep = short_tmp / ("x" * 120) / "patterd.sock"
    rc, last = _start(short_tmp, socket_path=deep)
    assert rc == 1 and "too long for a Unix socket" in last


def test_a_socket_folder_that_cannot_be_made(short_tmp: Path) -> None:
    (short_tmp / "file").write_text("")
    rc, last = _start(short_tmp, socket_path=short_tmp / "file" / "patterd.sock")
    assert rc == 1 and "cannot create the control socket's folder" in last


def test_a_bad_log_level(short_tmp: Path) -> None:
    rc, last = _start(short_tmp, env_extra={"PATTERD_LOG_LEVEL": "chatty"})
    assert rc == 2 and "Unknown level: 'CHATTY'" in last
    rc, last = _start(short_tmp, extra=("--log-level", "chatty"))
    assert rc == 2 and "invalid choice: 'CHATTY'" in last


def test_a_negative_grace_is_a_usage_error(short_tmp: Path) -> None:
    rc, last = _start(short_tmp, extra=("--grace", "-5"))
    assert rc == 2 and "must be 0 or more seconds" in last
