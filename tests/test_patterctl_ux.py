"""patterctl against real patterd processes, as an operator meets it: permission
errors, no daemon, restarts, ended calls, bad numbers and a machine without a keyring.

Every check runs ``patterctl`` (or the client) as a real process against a real
``patterd`` on its real Unix socket; nothing of the project is patched.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from patterd.client import PatterClient
from tests.support.daemon_proc import ROOT, DaemonProcess, base_env, run_tool, write_config
from tests.support.fixtures import short_tmp_dir

NOBODY = 65534


@pytest.fixture
def tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


def ctl(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_tool("patterd.ctl", *args, env=env, stdin=stdin)


def ctl_as_other_user(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """patterctl run by a user who is not the daemon's (as root: as nobody, via setpriv)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to become another user")
        prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "patterd.ctl", *args],
        env={**env, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )


def place_and_end(socket: Path, first_message: str | None = None) -> str:
    """A call that has ended, set up through the client (patterctl is what is under test)."""

    async def go() -> str:
        async with PatterClient(socket) as client:
            call_id = await client.place_call("+15551234567", first_message=first_message)
            await client.hangup(call_id)
            return call_id

    return asyncio.run(go())


def _no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr, r.stderr


# 1. Permission denied, and other unusable socket paths ------------------------------


def test_permission_denied_on_the_socket_folder_is_exit_3(tmp: Path) -> None:
    with DaemonProcess(tmp, write_config(tmp)) as d:
        env = base_env(tmp)
        folder = d.socket_path.parent
        if os.geteuid() != 0:
            folder.chmod(0)  # the caller is the daemon's user: shut it out of the folder
        try:
            r = ctl_as_other_user("status", env=env)
        finally:
            folder.chmod(0o700)
    _no_traceback(r)
    assert r.returncode == 3, r.stderr
    assert "permission denied" in r.stderr and str(d.socket_path) in r.stderr
    assert "group" not in r.stderr, "the socket is 0600: no group member can use it"
    assert "user patterd runs as" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a second user to be refused by the socket")
def test_permission_denied_on_the_socket_itself_is_exit_3(tmp: Path) -> None:
    with DaemonProcess(tmp, write_config(tmp)) as d:
        tmp.chmod(0o755)
        d.socket_path.parent.chmod(0o755)  # the folder open, the socket still 0600
        r = ctl_as_other_user("status", env=base_env(tmp))
        r_tail = ctl_as_other_user("tail", env=base_env(tmp))
    for res in (r, r_tail):
        _no_traceback(res)
        assert res.returncode == 3, res.stderr
        assert "permission denied" in res.stderr and "group" not in res.stderr


def test_unusable_socket_paths_are_clear_exit_3(tmp: Path) -> None:
    env = base_env(tmp)
    a_file = tmp / "plain-file"
    a_file.write_text("")
    cases = {
        str(a_file / "patterd.sock"): "not a folder",
        str(a_file): "not a socket",
        "/tmp/" + "x" * 200 + "/patterd.sock": "too long for a Unix socket",
    }
    for path, says in cases.items():
        r = ctl("--socket", path, "status", env=env)
        _no_traceback(r)
        assert r.returncode == 3, (path, r.stderr)
        assert says in r.stderr, (path, r.stderr)


# 2. tail across a daemon restart -----------------------------------------------------


async def _read_until(stream: asyncio.StreamReader, want: str, out: list[str]) -> None:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError(f"stream ended before {want!r}; got {out}")
        out.append(line)
        if want in line:
            return


async def test_tail_follows_a_restarted_daemon(tmp: Path) -> None:
    """The resumed position belonged to the old daemon; the new one's log starts at 1,
    so before, tail went silent until the new daemon had caught up with it."""
    config = write_config(tmp)
    env = base_env(tmp)
    first = await asyncio.to_thread(DaemonProcess(tmp, config, "--grace", "0").start)
    second: DaemonProcess | None = None
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "patterd.ctl", "tail", "--json", "--since", "0",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert tail.stdout is not None and tail.stderr is not None
    out: list[str] = []
    err: list[str] = []
    try:
        async with PatterClient(first.socket_path) as client:
            for _ in range(3):  # 15 events: more than the new daemon will have
                await client.place_call("+15551234567", first_message="before the restart")
        async with asyncio.timeout(20):
            while sum("before the restart" in line for line in out) < 3:
                await _read_until(tail.stdout, "before the restart", out)
        await asyncio.to_thread(first.stop)
        first.__exit__(None, None, None)
        second = await asyncio.to_thread(DaemonProcess(tmp, config, "--grace", "0").start)
        async with PatterClient(second.socket_path) as client:
            await asyncio.sleep(1.0)  # tail reconnects within 2 s of backoff
            await client.place_call("+15551234567", first_message="after the restart")
        async with asyncio.timeout(20):
            await _read_until(tail.stdout, "after the restart", out)
            await _read_until(tail.stderr, "restarted", err)
    finally:
        if tail.returncode is None:
            tail.terminate()
        await tail.wait()
        for d in (first, second):
            if d is not None:
                d.__exit__(None, None, None)
    after = [json.loads(line) for line in out if "after the restart" in line]
    assert after[0]["pos"] <= 5, "the new daemon's events, from its first position"


# 3. tail without a daemon, and on ended or unknown calls ------------------------------


def test_tail_without_a_daemon_fails_fast(tmp: Path) -> None:
    """Before: 30 s of silence, then "lost patterd ... could not reconnect"."""
    started = time.monotonic()
    r = ctl("tail", env=base_env(tmp))
    took = time.monotonic() - started
    assert r.returncode == 3, r.stderr
    assert "patterd is not running" in r.stderr and "lost" not in r.stderr
    assert took < 10, took


def test_tail_of_an_ended_or_unknown_call_exits(tmp: Path) -> None:
    """Before, both waited forever for events that could never come."""
    env = base_env(tmp)
    with DaemonProcess(tmp, write_config(tmp)) as d:
        cid = place_and_end(d.socket_path, "hello there")
        ended = ctl("tail", cid, env=env)
        unknown = ctl("tail", "no-such-call", env=env)
    assert ended.returncode == 0, ended.stderr
    assert f"[{cid}] agent: hello there" in ended.stdout
    assert f"call {cid} has ended (status: completed)" in ended.stderr
    assert unknown.returncode == 4, unknown.stderr
    _no_traceback(unknown)


def test_tail_of_a_live_call_ends_with_it(tmp: Path) -> None:
    env = base_env(tmp)
    with DaemonProcess(tmp, write_config(tmp)):
        cid = ctl("call", "+15551234567", env=env).stdout.strip()
        tail = subprocess.Popen(
            [sys.executable, "-m", "patterd.ctl", "tail", cid],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.5)
        assert ctl("hangup", cid, env=env).returncode == 0
        out, err = tail.communicate(timeout=20)
    assert tail.returncode == 0, err
    assert f"[{cid}] call.ended" in out


# 4. a number too short for the SDK -----------------------------------------------------


def test_call_to_a_too_short_number_is_a_usage_error(tmp: Path) -> None:
    env = base_env(tmp)
    with DaemonProcess(tmp, write_config(tmp)):
        r = ctl("call", "+1555", env=env)
    _no_traceback(r)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "to:" in r.stderr and "pattern" in r.stderr


# 5. hangup / dtmf on an ended call ------------------------------------------------------


def test_hangup_and_dtmf_on_an_ended_call_say_it_has_ended(tmp: Path) -> None:
    env = base_env(tmp)
    with DaemonProcess(tmp, write_config(tmp)) as d:
        cid = place_and_end(d.socket_path)
        shown = ctl("show", cid, env=env)
        again = ctl("hangup", cid, env=env)
        dtmf = ctl("dtmf", cid, "1", env=env)
        unknown = ctl("hangup", "no-such-call", env=env)
    assert shown.returncode == 0
    for r in (again, dtmf):
        assert r.returncode == 5, r.stderr
        assert f"call {cid} has ended" in r.stderr and "not found" not in r.stderr
    assert unknown.returncode == 4


# 6. no usable keyring --------------------------------------------------------------------


def test_creds_without_a_keyring(tmp: Path) -> None:
    env = base_env(tmp)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    d = DaemonProcess(tmp, write_config(tmp), env=env)
    with d:
        r = ctl("creds", "set", "FOO_KEY", env=env, stdin="the-value\n")
        ls1 = ctl("creds", "ls", env=env)
        ls2 = ctl("creds", "ls", env=env)
        _, daemon_log = d.stop()
    assert r.returncode == 1, r.stderr
    assert "NoKeyringError" in r.stderr
    assert "environment" in r.stderr and "LoadCredential=FOO_KEY" in r.stderr
    assert "the-value" not in r.stderr
    assert ls1.returncode == 0 and ls2.returncode == 0
    warnings = [line for line in daemon_log.splitlines() if "keyring unavailable" in line]
    assert len(warnings) == 1, warnings


# 7. empty call id ------------------------------------------------------------------------


def test_show_of_an_empty_call_id_is_a_usage_error(tmp: Path) -> None:
    """Before: "not found: 404: Not Found" (or, with no daemon, "not running")."""
    env = base_env(tmp)
    results = [ctl(cmd, "", env=env) for cmd in ("show", "hangup", "tail")]
    for r in results:
        assert r.returncode == 2, r.stderr
        assert "empty" in r.stderr and "404" not in r.stderr
