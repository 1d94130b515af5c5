"""What every HTTP+SSE LLM adapter shares: the request, retries, error hygiene.

Retries happen only while nothing has been yielded: once a token reached the
caller, a retry would repeat words the caller may already have heard.
Errors are :class:`ProviderError` whose text has the API key scrubbed out,
because some gateways echo request headers back in their error bodies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from patter_core.providers.base import LLMChunk, ProviderError
from patter_core.providers.http import shared_session
from patter_core.providers.sse import SSEEvent, iter_sse

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Timeouts in seconds; ``retries`` counts extra attempts before the first token."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    retries: int = 2
    backoff: float = 0.5


def redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


async def open_sse(
    provider: str,
    url: str,
    *,
    headers: dict[str, str],
    body: dict[str, Any],
    secret: str,
    settings: StreamSettings,
) -> AsyncIterator[SSEEvent]:
    """POST ``body`` and yield its SSE events; closing the iterator drops the connection."""
    session = shared_session()
    try:
        resp = await asyncio.wait_for(
            session.post(url, headers=headers, json=body), timeout=settings.connect_timeout
        )
    except TimeoutError as exc:
        raise ProviderError(provider, "connect timed out", retryable=True) from exc
    except aiohttp.ClientError as exc:
        msg = redact(f"request failed: {type(exc).__name__}: {exc}", secret)
        raise ProviderError(provider, msg, retryable=True) from exc
    finished = False
    try:
        if resp.status >= 400:
            try:
                detail = await asyncio.wait_for(resp.text(), timeout=settings.read_timeout)
            except (TimeoutError, aiohttp.ClientError, UnicodeDecodeError):
                detail = ""
            raise ProviderError(
                provider,
                redact(f"HTTP {resp.status}: {detail[:300]}", secret),
                status=resp.status,
                retryable=resp.status in (408, 409, 429) or resp.status >= 500,
            )
        try:
            async for event in iter_sse(resp, read_timeout=settings.read_timeout):
                yield event
        except TimeoutError as exc:
            raise ProviderError(
                provider, f"stream stalled for {settings.read_timeout:g}s", retryable=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise ProviderError(
                provider, f"stream dropped: {type(exc).__name__}", retryable=True
            ) from exc
        finished = True
    finally:
        if finished:
            resp.release()
        else:
            resp.close()


async def with_retries(
    provider: str,
    attempt: Callable[[], AsyncGenerator[LLMChunk, None]],
    settings: StreamSettings,
) -> AsyncIterator[LLMChunk]:
    """Run ``attempt``; on a retryable error before its first chunk, back off and rerun."""
    tries = 0
    while True:
        yielded = False
        stream = attempt()
        try:
            async for chunk in stream:
                yielded = True
                yield chunk
            return
        except ProviderError as exc:
            if yielded or not exc.retryable or tries >= settings.retries:
                raise
            tries += 1
            delay = settings.backoff * (2 ** (tries - 1)) * (0.75 + random.random() / 2)
            log.info("%s: retrying in %.2fs after: %s", provider, delay, exc)
            await asyncio.sleep(delay)
        finally:
            await stream.aclose()


def bad_event(provider: str, what: str) -> ProviderError:
    return ProviderError(provider, f"malformed stream event: {what}")


def parse_json(provider: str, data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except json.JSONDecodeError as exc:
        raise bad_event(provider, f"not JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise bad_event(provider, "not a JSON object")
    return value


def error_text(error: Any, secret: str) -> str:
    """The message of an in-stream error object, trimmed and scrubbed."""
    if isinstance(error, dict):
        text = str(error.get("message") or error.get("type") or "error")
    else:
        text = str(error)
    return redact(f"error in stream: {text[:300]}", secret)
