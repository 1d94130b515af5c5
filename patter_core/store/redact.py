"""Phone numbers as stored: ``full`` (default), ``mask`` (last 4 digits) or ``hash_only``."""

from __future__ import annotations

import hashlib
import os
from typing import Literal

RedactMode = Literal["full", "mask", "hash_only"]
MODES: tuple[RedactMode, ...] = ("full", "mask", "hash_only")


def mode_from_env() -> RedactMode:
    value = os.environ.get("PATTER_LOG_REDACT_PHONE", "full").strip().lower()
    if value not in MODES:
        raise ValueError(
            f"PATTER_LOG_REDACT_PHONE must be one of {', '.join(MODES)}, got {value!r}"
        )
    return value


def redact_phone(number: str, mode: RedactMode) -> str:
    if not number or mode == "full":
        return number
    if mode == "mask":
        digits = [c for c in number if c.isdigit()]
        tail = "".join(digits[-4:])
        return "*" * max(len(number) - len(tail), 0) + tail
    return "sha256:" + hashlib.sha256(number.encode()).hexdigest()[:16]
