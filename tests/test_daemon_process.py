"""patterd as a real subprocess over its real socket, driven by patterctl and raw HTTP."""

from __future__ import annotations

import json
import re
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon_proc import DaemonProcess, base_env, run_tool, write_config
from tests.support.fixtures import short_tmp_dir


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


def ctl(tmp: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return run_tool("patterd.ctl", *args, env=env or base_env(tmp), stdin=stdin)


def test_start_status_and_socket_modes(short_tmp: Path) -> None:
    cfg = write_config(short_tmp)
    with DaemonProcess(short_tmp, cfg) as d:
        st = d.socket_path.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert stat.S_IMODE(d.socket_path.parent.stat().st_mode) == 0o700
        r = ctl(short_tmp, "status", "--json")
        assert r.returncode == 0, r.stderr
        status = json.loads(r.stdout)
        assert status["accepting"] is True
        assert status["config_path"] == str(cfg)
        assert status["live_calls"] == 0
        rc, err = d.stop()
    assert rc == 0
    assert "patterd stopped" in err
    assert not d.socket_path.exists()


def test_second_daemon_on_same_socket_is_refused(short_tmp: Path) -> None:
    cfg = write_config(short_tmp)
    with DaemonProcess(short_tmp, cfg) as first:
        second = run_tool(
            "patterd.cli", "run", "--config", str(cfg), "--socket", str(first.socket_path),
            "--runtime", "tests.support.runtime:create", env=base_env(short_tmp),
        )  # fmt: skip
        assert second.returncode == 1
        assert "another patterd is already running on" in second.stderr
        assert ctl(short_tmp, "status").returncode == 0
        first.stop()


def test_stale_socket_from_dead_daemon_is_replaced(short_tmp: Path) -> None:
    cfg = write_config(short_tmp)
    sock_path = short_tmp / "run" / "patterd.sock"
    sock_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(sock_path))
    dead.close()  # the file stays; nobody listens
    assert sock_path.exists()
    with DaemonProcess(short_tmp, cfg) as d:
        assert ctl(short_tmp, "status").returncode == 0
        assert d.stop()[0] == 0


def test_config_errors_name_file_line_and_key(short_tmp: Path) -> None:
    cfg = write_config(short_tmp, '[agents.a]\nengine = "echo"\n\n[server]\nport = "eighty"\n')
    r = run_tool("patterd.cli", "check-config", "--config", str(cfg), env=base_env(short_tmp))
    assert r.returncode == 1
    assert f"{cfg}:5: server.port:" in r.stderr
    bad_toml = short_tmp / "broken.toml"
    bad_toml.write_text("[agents.a]\nengine = \n")
    r = run_tool("patterd.cli", "check-config", "--config", str(bad_toml), env=base_env(short_tmp))
    assert r.returncode == 1
    assert f"{bad_toml}:2: invalid TOML" in r.stderr
    # `run` refuses the same way, before touching the socket.
    d = DaemonProcess(short_tmp, cfg)
    r = run_tool("patterd.cli", *d.argv[3:], env=base_env(short_tmp))
    assert r.returncode == 1
    assert "server.port" in r.stderr and str(cfg) in r.stderr
    assert not d.socket_path.exists()
    d.notify.close()


def test_check_config_accepts_the_shipped_example(short_tmp: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "packaging" / "patterd.example.toml"
    r = run_tool("patterd.cli", "check-config", "--config", str(example), env=base_env(short_tmp))
    assert r.returncode == 0, r.stderr
    assert "ok (" in r.stdout
    # The copy in docs/daemon.md is the file itself, so it is validated too.
    doc = (example.parents[1] / "docs" / "daemon.md").read_text(encoding="utf-8")
    assert "```toml\n" + example.read_text(encoding="utf-8") + "```\n" in doc


def test_check_config_names_an_unknown_pricing_key(short_tmp: Path) -> None:
    """It used to pass check-config and fail only when patterd started."""
    cfg = short_tmp / "bad.toml"
    cfg.write_text('[pricing]\n"twilio.voice_minute" = 0.0085\n')
    r = run_tool("patterd.cli", "check-config", "--config", str(cfg), env=base_env(short_tmp))
    assert r.returncode != 0
    assert "bad.toml:1: pricing" in r.stderr and "unknown pricing keys" in r.stderr


def test_credentials_set_list_rm_into_file_keyring(short_tmp: Path) -> None:
    cfg = write_config(short_tmp)
    secret = "sk-test-abcdef0123456789"
    with DaemonProcess(short_tmp, cfg) as d:
        r = ctl(short_tmp, "creds", "set", "OPENAI_API_KEY", stdin=secret + "\n")
        assert r.returncode == 0, r.stderr
        stored = json.loads((short_tmp / "keyring.json").read_text())
        assert stored["patter"]["OPENAI_API_KEY"] == secret
        r = ctl(short_tmp, "creds", "ls", "--json")
        assert r.returncode == 0
        assert {"name": "OPENAI_API_KEY", "source": "keyring"} in json.loads(r.stdout)
        assert secret not in r.stdout
        r = ctl(short_tmp, "creds", "rm", "OPENAI_API_KEY")
        assert r.returncode == 0
        assert ctl(short_tmp, "creds", "rm", "OPENAI_API_KEY").returncode == 4
        r = ctl(short_tmp, "creds", "ls", "--json")
        assert all(c["name"] != "OPENAI_API_KEY" for c in json.loads(r.stdout))
        assert ctl(short_tmp, "creds", "set", "bad-name", stdin="x" * 10).returncode == 2
        rc, err = d.stop()
    assert rc == 0
    assert secret not in err


def test_patterctl_exit_codes_against_a_daemon(short_tmp: Path) -> None:
    cfg = write_config(short_tmp)
    with DaemonProcess(short_tmp, cfg) as d:
        r = ctl(short_tmp, "call", "+15551234567", "--first-message", "hello there")
        assert r.returncode == 0, r.stderr
        call_id = r.stdout.strip()
        assert ctl(short_tmp, "show", call_id).returncode == 0
        assert ctl(short_tmp, "show", "nope").returncode == 4
        assert ctl(short_tmp, "hangup", "nope").returncode == 4
        assert ctl(short_tmp, "call", "12345").returncode == 2  # not E.164
        assert ctl(short_tmp, "frobnicate").returncode == 2
        refused = ctl(short_tmp, "call", "+15550000000")  # the test carrier refuses it
        assert refused.returncode == 1
        assert "carrier refused" in refused.stderr
        r = ctl(short_tmp, "calls", "--json")
        assert [c["call_id"] for c in json.loads(r.stdout)["calls"]] == [call_id]
        tail = subprocess.Popen(
            [sys.executable, "-m", "patterd.ctl", "tail", call_id, "--since", "0"],
            env=base_env(short_tmp),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert tail.stdout is not None
        # Replayed from the ring buffer: the call started before tail connected.
        assert tail.stdout.readline() == f"[{call_id}] call.started\n"
        assert tail.stdout.readline() == f"[{call_id}] agent: hello there\n"
        assert ctl(short_tmp, "hangup", call_id).returncode == 0
        out, _ = tail.communicate(timeout=30)
        assert tail.returncode == 0  # tail of one call ends with the call
        assert out == f"[{call_id}] call.ended\n"
        assert ctl(short_tmp, "store", "rebuild").returncode == 0
        d.stop()


def test_patterctl_without_a_daemon_exits_3(short_tmp: Path) -> None:
    r = ctl(short_tmp, "status")
    assert r.returncode == 3
    assert "not running" in r.stderr
    # A socket file with nobody listening: connection refused, also 3.
    path = short_tmp / "run" / "patterd.sock"
    path.parent.mkdir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    r = ctl(short_tmp, "calls")
    assert r.returncode == 3
    assert "not running" in r.stderr


def test_sigterm_drains_live_calls_and_exits_cleanly(short_tmp: Path) -> None:
    cfg = write_config(short_tmp)
    with DaemonProcess(short_tmp, cfg, "--grace", "0.2") as d:
        call_id = ctl(short_tmp, "call", "+15551234567").stdout.strip()
        d.signal(signal.SIGTERM)
        d.wait_for("STOPPING=1")
        rc, err = d.stop()
    assert rc == 0
    assert "draining: 1 live call(s)" in err
    assert f"grace period over: ending call {call_id}" in err
    assert "drained" in err


def test_sighup_reloads_config_and_keeps_old_on_error(short_tmp: Path) -> None:
    cfg = write_config(short_tmp)
    with DaemonProcess(short_tmp, cfg, "--grace", "0") as d:
        before = ctl(short_tmp, "call", "+15551234567", "--agent", "sales")
        # Not configured yet: the daemon rejects the request (422), patterctl's exit 2.
        assert before.returncode == 2 and "unknown agent 'sales'" in before.stderr
        cfg.write_text('[agents.echo]\nengine = "echo"\n[agents.sales]\nengine = "echo"\n')
        d.signal(signal.SIGHUP)
        # SIGHUP reloads asynchronously; `patterctl reload` (same path) makes it deterministic.
        assert ctl(short_tmp, "reload").returncode == 0
        assert ctl(short_tmp, "call", "+15551234567", "--agent", "sales").returncode == 0
        cfg.write_text("[agents.sales\n")
        r = ctl(short_tmp, "reload")
        assert r.returncode == 2
        assert "invalid TOML" in r.stderr
        d.signal(signal.SIGHUP)
        assert ctl(short_tmp, "call", "+15551234567", "--agent", "sales").returncode == 0
        rc, err = d.stop()
    assert rc == 0
    assert "config reloaded" in err
    assert "reload refused, keeping the running config" in err


def test_a_notify_socket_nobody_reads_does_not_freeze_the_daemon(short_tmp: Path) -> None:
    """A watchdog ping every millisecond fills the unread notify queue within a second;
    the sends must then fail (logged) rather than block the event loop."""
    cfg = write_config(short_tmp, '[agents.a]\nengine = "echo"\n')
    d = DaemonProcess(short_tmp, cfg)
    d.env["WATCHDOG_USEC"] = "2000"
    with d:
        time.sleep(2.0)  # nothing reads d.notify from here on
        out = run_tool("patterd.ctl", "--socket", str(d.socket_path), "status", env=d.env)
        assert out.returncode == 0, out.stderr
        code, err = d.stop(timeout=10)
    assert code == 0
    assert err.count("sd_notify WATCHDOG failed") == 1  # once for the streak


def test_sd_notify_ready_watchdog_and_metrics_port(short_tmp: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(short_tmp, f'[server]\nmetrics_port = {port}\n[agents.a]\nengine = "echo"\n')
    d = DaemonProcess(short_tmp, cfg)
    d.env["WATCHDOG_USEC"] = "200000"
    with d:
        assert any(m.startswith("READY=1") for m in d.messages)
        assert d.wait_for("WATCHDOG=1") == "WATCHDOG=1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
        assert "patter_live_calls 0" in text
        # The daemon froze its start-up heap, and times its loop and its GC pauses.
        frozen = re.search(r"^patter_gc_frozen_objects (\d+)$", text, re.M)
        assert frozen is not None and int(frozen.group(1)) > 10_000
        assert 'patter_gc_pause_seconds_count{generation="2"}' in text
        lag_count = 0
        deadline = time.monotonic() + 10
        while lag_count == 0 and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                found = re.search(
                    r"^patter_event_loop_lag_seconds_count (\d+)$", r.read().decode(), re.M
                )
            lag_count = int(found.group(1)) if found else 0
            time.sleep(0.1)
        assert lag_count > 0
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=10)
        assert d.stop()[0] == 0
