"""Checks on user input that every entry point shares."""

from __future__ import annotations

import re

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def require_e164(value: str, what: str = "phone number") -> str:
    """Return ``value`` if it is E.164 (``+`` then 7–15 digits), else raise ValueError."""
    if not isinstance(value, str) or not _E164.match(value):
        raise ValueError(f"{what} must be in E.164 format like '+15550001234', got {value!r}")
    return value


def require_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer from 1 to 65535, got {port!r}")
    return port
