"""Run ``patterd`` as a real subprocess over its real socket, ready when it says READY=1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = "tests.support.runtime:create"


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHON_KEYRING_BACKEND="tests.support.file_keyring.FileKeyring",
        PATTER_TEST_KEYRING_FILE=str(tmp / "keyring.json"),
        XDG_RUNTIME_DIR=str(tmp / "xdg"),
        XDG_CONFIG_HOME=str(tmp / "config"),
        PATTERD_SOCKET=str(tmp / "run" / "patterd.sock"),
    )
    for name in (
        "OPENAI_API_KEY",
        "TWILIO_AUTH_TOKEN",
        "CREDENTIALS_DIRECTORY",
        "RUNTIME_DIRECTORY",
    ):
        env.pop(name, None)
    return env


def write_config(tmp: Path, text: str = '[agents.echo]\nengine = "echo"\n') -> Path:
    path = tmp / "patterd.toml"
    path.write_text(text)
    return path


class DaemonProcess:
    def __init__(
        self, tmp: Path, config: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.tmp = tmp
        self.socket_path = tmp / "run" / "patterd.sock"
        self.notify_path = tmp / f"notify-{os.getpid()}-{id(self)}.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(30)
        self.env = env or base_env(tmp)
        self.env["NOTIFY_SOCKET"] = str(self.notify_path)
        self.argv = [
            sys.executable, "-m", "patterd.cli", "run", "--config", str(config),
            "--socket", str(self.socket_path), "--runtime", RUNTIME, *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.messages: list[str] = []

    def start(self) -> DaemonProcess:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        self.wait_for("READY=1")
        return self

    def wait_for(self, state: str) -> str:
        """Next notify datagram containing ``state`` (raises on the 30 s socket timeout)."""
        while True:
            msg = self.notify.recv(4096).decode()
            self.messages.append(msg)
            if state in msg:
                return msg

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        self.notify.close()


def run_tool(
    module: str, *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
