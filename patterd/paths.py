"""Where the control socket lives, and claiming it safely.

A live daemon on the socket is refused (checked by connecting, and guarded by
an flock so two daemons starting at once cannot both win); a socket file left
by a dead daemon is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

SOCKET_NAME = "patterd.sock"


def default_socket_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$PATTERD_SOCKET``, ``$RUNTIME_DIRECTORY`` (systemd), ``$XDG_RUNTIME_DIR/patter``, /tmp."""
    env = os.environ if environ is None else environ
    if env.get("PATTERD_SOCKET"):
        return Path(env["PATTERD_SOCKET"]).expanduser()
    if env.get("RUNTIME_DIRECTORY"):
        return Path(env["RUNTIME_DIRECTORY"].split(":")[0]) / SOCKET_NAME
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "patter" / SOCKET_NAME
    return Path(tempfile.gettempdir()) / f"patter-{os.getuid()}" / SOCKET_NAME


class SocketInUse(Exception):
    """Another daemon is serving on this socket."""


class SocketPathUnusable(Exception):
    """The control socket cannot be created at this path; the message says why."""


# sun_path holds 108 bytes, one of them the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


def too_long_for_a_socket(path: Path) -> str | None:
    """Why ``path`` cannot be a Unix socket's address, or None if it can."""
    size = len(os.fsencode(path))
    if size <= MAX_SOCKET_PATH_BYTES:
        return None
    return (
        f"{path} is too long for a Unix socket ({size} bytes, at most"
        f" {MAX_SOCKET_PATH_BYTES}); choose a shorter --socket or $PATTERD_SOCKET"
    )


def prepare_socket_dir(path: Path) -> None:
    """Create the socket's folder 0700; tighten it if we own it and it is wider."""
    if (why := too_long_for_a_socket(path)) is not None:
        raise SocketPathUnusable(why)
    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise SocketPathUnusable(
            f"cannot create the control socket's folder {folder}: {exc.strerror or exc}"
        ) from None
    st = folder.stat()
    ours = folder.name in ("patter", f"patter-{os.getuid()}")
    if ours and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        folder.chmod(0o700)


def _is_live(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False
            raise
        return True


class SocketClaim:
    """Holds the lock file for as long as the daemon owns ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        prepare_socket_dir(self.path)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SocketInUse(
                f"another patterd is already running on {self.path}"
                f" (lock {self._lock_path} is held)"
            ) from None
        self._lock_fd = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        if self.path.exists() or self.path.is_symlink():
            if not stat.S_ISSOCK(self.path.lstat().st_mode):
                self.release(unlink=False)
                raise SocketInUse(f"{self.path} exists and is not a socket; refusing to replace it")
            if _is_live(self.path):
                self.release(unlink=False)
                raise SocketInUse(f"another patterd is already listening on {self.path}")
            self.path.unlink()

    def secure(self) -> None:
        """Called right after bind: owner-only access."""
        self.path.chmod(0o600)

    def release(self, *, unlink: bool = True) -> None:
        if self._lock_fd is None:
            return
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None
