"""Telnyx webhook signatures: Ed25519 over ``{timestamp}|{raw body}`` (protocols.md §5.3).

A plain function of its inputs and the clock, so tests can pin both.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
TOLERANCE_S = 300


class SignatureError(Exception):
    """Why a webhook's signature was refused (safe to log: no key material)."""


def load_public_key(public_key_b64: str) -> VerifyKey:
    """The portal's base64 public key; ValueError if it is not a 32-byte Ed25519 key."""
    try:
        raw = base64.b64decode(public_key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("TELNYX_PUBLIC_KEY is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"TELNYX_PUBLIC_KEY must be 32 bytes (got {len(raw)})")
    return VerifyKey(raw)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value.strip()
    return ""


def verify(
    key: VerifyKey,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> None:
    """Raise SignatureError unless ``body`` was signed by ``key`` within ``tolerance_s``."""
    signature_b64 = _header(headers, SIGNATURE_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not signature_b64 or not timestamp:
        raise SignatureError("missing signature or timestamp header")
    try:
        ts = int(timestamp)
    except ValueError:
        raise SignatureError("timestamp is not a whole number of seconds") from None
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError(f"timestamp is {current - ts:+.0f} s from now (limit {tolerance_s})")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("signature is not base64") from None
    if len(signature) != 64:
        raise SignatureError("signature is not 64 bytes")
    try:
        key.verify(timestamp.encode() + b"|" + body, signature)
    except BadSignatureError:
        raise SignatureError("signature does not match") from None
