"""systemd's notify protocol: one datagram to ``$NOTIFY_SOCKET`` per state change."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)
_failing: set[str] = set()  # states whose last send failed


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``READY=1``); False when not under systemd or the send failed."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    name = state.split("=", 1)[0]
    if address.startswith("@"):
        address = "\0" + address[1:]
    # Non-blocking: this runs on the event loop, and a receiver that stops reading
    # (a stuck supervisor, a test harness) fills the datagram queue; a blocking send
    # would then stop every call the daemon is carrying.
    sock_type = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
    try:
        with socket.socket(socket.AF_UNIX, sock_type) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        # Once per streak: a watchdog ping that keeps failing would otherwise log at
        # its own rate, and a log nobody drains blocks the loop just like the send.
        if name not in _failing:
            _failing.add(name)
            log.warning("sd_notify %s failed (logged once until it works): %s", name, exc)
        return False
    if name in _failing:
        _failing.discard(name)
        log.info("sd_notify %s works again", name)
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None if not asked."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
