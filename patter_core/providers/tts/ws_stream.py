"""WebSocket plumbing shared by the streaming TTS providers.

Every wait has a timeout and every failure becomes a ``ProviderError`` that
names the provider and the failure class, never the request (URLs and headers
can carry keys).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from typing import Any

import aiohttp

from patter_core.providers.base import ProviderError
from patter_core.providers.http import shared_session


async def connect(
    provider: str,
    url: str,
    *,
    headers: dict[str, str],
    timeout: float,
    heartbeat: float | None = None,
) -> aiohttp.ClientWebSocketResponse:
    """Open a WebSocket; a refused handshake keeps its HTTP status. ``heartbeat``
    pings a long-lived socket so a dead peer is noticed between replies."""
    try:
        return await asyncio.wait_for(
            shared_session().ws_connect(url, headers=headers, heartbeat=heartbeat, autoping=True),
            timeout=timeout,
        )
    except TimeoutError as exc:
        raise ProviderError(provider, "connect timed out", retryable=True) from exc
    except aiohttp.WSServerHandshakeError as exc:
        raise ProviderError(
            provider,
            f"WebSocket refused: HTTP {exc.status}",
            status=exc.status,
            retryable=exc.status == 429 or exc.status >= 500,
        ) from exc
    except aiohttp.ClientError as exc:
        raise ProviderError(
            provider, f"connect failed: {type(exc).__name__}", retryable=True
        ) from exc


async def receive(
    provider: str, ws: aiohttp.ClientWebSocketResponse, *, timeout: float
) -> aiohttp.WSMessage:
    """The next frame, or a retryable error when the stream stalls."""
    try:
        return await asyncio.wait_for(ws.receive(), timeout=timeout)
    except TimeoutError as exc:
        raise ProviderError(provider, "audio stream stalled", retryable=True) from exc
    except aiohttp.ClientError as exc:
        raise ProviderError(
            provider, f"audio stream dropped: {type(exc).__name__}", retryable=True
        ) from exc


def dropped(provider: str, ws: aiohttp.ClientWebSocketResponse) -> ProviderError:
    """The server closed or broke the socket before the utterance ended."""
    return ProviderError(
        provider, f"audio stream dropped (close code {ws.close_code})", retryable=True
    )


async def close_quietly(ws: aiohttp.ClientWebSocketResponse, timeout: float = 1.0) -> None:
    """Close without waiting long on a peer that may be gone (barge-in, teardown)."""
    with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
        await asyncio.wait_for(ws.close(), timeout=timeout)


async def send_json(
    provider: str, ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any], timeout: float
) -> None:
    try:
        await asyncio.wait_for(ws.send_str(json.dumps(message)), timeout)
    except TimeoutError as exc:
        raise ProviderError(provider, "send timed out", retryable=True) from exc
    except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
        raise ProviderError(provider, f"send failed: {type(exc).__name__}", retryable=True) from exc


def parse_object(data: str) -> dict[str, Any]:
    """A JSON text frame as a dict; anything else (garbage, arrays) as empty."""
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        return {}
    return event if isinstance(event, dict) else {}


def b64_audio(provider: str, data: object) -> bytes:
    if not isinstance(data, str):
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProviderError(provider, "malformed audio chunk") from exc


def server_text(text: object, secret: str, limit: int = 200) -> str:
    """A server-supplied message, cut short and with the key masked should it be echoed."""
    out = str(text)[:limit]
    return out.replace(secret, "***") if secret else out
