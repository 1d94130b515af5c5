"""Stream a TTS response body: POST, check the status, yield chunks as they come.

Closing the iterator closes the connection (not back to the pool), so the
server stops sending at once on barge-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from patter_core.providers.base import ProviderError
from patter_core.providers.http import shared_session


async def stream_post(
    provider: str,
    url: str,
    *,
    headers: dict[str, str],
    json_body: dict[str, Any],
    connect_timeout: float,
    read_timeout: float,
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
            detail = (await asyncio.wait_for(resp.text(), timeout=read_timeout))[:200]
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
