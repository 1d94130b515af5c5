"""What can go wrong talking to patterd, and how the console says it in one line.

Besides the client's own :class:`~patterd.client.ClientError`, an ``OSError`` can
escape it while it looks for the socket (a folder on the way this user may not
enter, a path the system refuses). Every screen catches both, so a daemon that
cannot be reached never ends the console: it shows why and keeps retrying.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from patterd.client import ClientError

CLIENT_ERRORS: tuple[type[Exception], ...] = (ClientError, OSError)
# What the events feed survives too: a frame this client cannot read.
FEED_ERRORS: tuple[type[Exception], ...] = (*CLIENT_ERRORS, ValidationError)


def describe(exc: BaseException, socket_path: Path) -> str:
    """The client's message (its first line is the gist), or what an ``OSError`` means here."""
    if isinstance(exc, PermissionError):
        return (
            f"permission denied on {socket_path} or a folder above it: "
            "run as the user patterd runs as (the socket is that user's alone)"
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"cannot use the control socket {socket_path}: {reason}"
    return str(exc) or type(exc).__name__


def first_line(text: str) -> str:
    return text.splitlines()[0] if text.strip() else text
