"""Stream a TTS response body: POST, check the status, yield chunks as they come.

Closing the iterator closes the connection (not back to the pool), so the
server stops sending at once on barge-in. An error body is reduced to its
message where the vendor's shape is known (OpenAI ``{"error": {"message"}}``,
ElevenLabs ``{"detail": {"message"}}`` or FastAPI's ``{"detail": [{"msg"}]}``),
and the key is masked should the server echo it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from patter_core.providers.base import ProviderError
from patter_core.providers.http import shared_session
from patter_core.providers.tts.ws_stream import server_text


async def stream_post(
    provider: str,
    url: str,
    *,
    headers: dict[str, str],
    json_body: dict[str, Any],
    connect_timeout: float,
    read_timeout: float,
    secret: str = "",
) -> AsyncIterator[bytes]:
    session = shared_session()
    try:
        resp = await asyncio.wait_for(
            session.post(url, headers=headers, json=json_body), timeout=connect_timeout
        )
    except TimeoutError as exc:
        raise ProviderError(provider, "request timed out", retryable=True) from exc
    except aiohttp.ClientError as exc:
        raise ProviderError(provider, f"request failed: {type(exc).__name__}") from exc
    finished = False
    try:
        if resp.status >= 400:
            body = await asyncio.wait_for(resp.text(), timeout=read_timeout)
            detail = server_text(error_message(body), secret)
            raise ProviderError(
                provider,
                f"HTTP {resp.status}: {detail}",
                status=resp.status,
                retryable=resp.status == 429 or resp.status >= 500,
            )
        while True:
            try:
                chunk = await asyncio.wait_for(resp.content.readany(), timeout=read_timeout)
            except TimeoutError as exc:
                raise ProviderError(provider, "audio stream stalled", retryable=True) from exc
            except aiohttp.ClientError as exc:
                raise ProviderError(
                    provider, f"audio stream dropped: {type(exc).__name__}", retryable=True
                ) from exc
            if not chunk:
                finished = True
                return
            yield chunk
    finally:
        if finished:
            resp.release()
        else:
            resp.close()


def error_message(body: str) -> str:
    """The human part of a TTS error body, or the body itself when its shape is unknown."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body
    if not isinstance(data, dict):
        return body
    error, detail = data.get("error"), data.get("detail")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(detail, dict) and (detail.get("message") or detail.get("status")):
        return str(detail.get("message") or detail.get("status"))
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return str(detail[0].get("msg") or body)
    if isinstance(detail, str):
        return detail
    return body
