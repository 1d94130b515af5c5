"""One JSON-over-WebSocket connection to an engine provider, with a timeout on every wait.

Both engines speak JSON text frames over a client WebSocket. This module
opens the socket (handshake errors become ``EngineError`` with a code),
sends and receives JSON, and reports a closed or dead socket as
``EngineError(ENGINE_ERROR)`` so the engine can reconnect once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

import aiohttp

from patter_core.engines.errors import AUTH_FAILED, ENGINE_ERROR, RATE_LIMITED, EngineError


class Idle(Exception):
    """No frame arrived within the wait's timeout (the socket is still open)."""


class JsonSocket:
    def __init__(
        self, provider: str, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        self.provider = provider
        self._session = session
        self._ws = ws
        self._send_lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        provider: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_s: float = 10.0,
        heartbeat: float | None = 15.0,
    ) -> JsonSocket:
        """Open the socket; a dead peer is noticed by ``heartbeat`` pings going unanswered."""
        session = aiohttp.ClientSession()
        try:
            ws = await asyncio.wait_for(
                session.ws_connect(
                    url,
                    headers=dict(headers or {}),
                    heartbeat=heartbeat,
                    max_msg_size=16 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                ),
                connect_s,
            )
        except aiohttp.WSServerHandshakeError as exc:
            await session.close()
            raise handshake_error(provider, exc.status) from None
        except TimeoutError:
            await session.close()
            raise EngineError(
                provider, ENGINE_ERROR, f"connect timed out after {connect_s:g}s", retryable=True
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            await session.close()
            raise EngineError(
                provider, ENGINE_ERROR, f"connect failed: {type(exc).__name__}", retryable=True
            ) from None
        except BaseException:
            await session.close()
            raise
        return cls(provider, session, ws)

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def send(self, message: Mapping[str, Any], *, limit_s: float = 10.0) -> None:
        if self._ws.closed:
            raise EngineError(self.provider, ENGINE_ERROR, "socket closed", retryable=True)
        try:
            async with self._send_lock:
                await asyncio.wait_for(self._ws.send_str(json.dumps(message)), limit_s)
        except TimeoutError:
            raise EngineError(
                self.provider, ENGINE_ERROR, "send timed out", retryable=True
            ) from None
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise EngineError(
                self.provider, ENGINE_ERROR, f"send failed: {type(exc).__name__}", retryable=True
            ) from None

    async def receive(self, limit_s: float | None) -> dict[str, Any]:
        """Next JSON object: ``Idle`` after ``limit_s`` (None waits), ``EngineError`` at the end.

        Frames that are not JSON objects are skipped: one bad frame is not a dead call.
        """
        while True:
            try:
                msg = await asyncio.wait_for(self._ws.receive(), limit_s)
            except TimeoutError:
                raise Idle from None
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    return data
                continue
            if msg.type in (
                aiohttp.WSMsgType.BINARY,
                aiohttp.WSMsgType.PING,
                aiohttp.WSMsgType.PONG,
            ):
                continue
            code = self._ws.close_code
            raise EngineError(
                self.provider,
                ENGINE_ERROR,
                f"socket closed by peer (close code {code})",
                retryable=True,
            )

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._ws.close(), 5.0)
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass
        finally:
            await self._session.close()


def handshake_error(provider: str, status: int) -> EngineError:
    if status in (401, 403):
        return EngineError(provider, AUTH_FAILED, f"API key refused (HTTP {status})", status=status)
    if status == 429:
        return EngineError(
            provider, RATE_LIMITED, "rate limited (HTTP 429)", status=status, retryable=True
        )
    return EngineError(
        provider,
        ENGINE_ERROR,
        f"handshake failed (HTTP {status})",
        status=status,
        retryable=status >= 500,
    )
