"""One aiohttp ClientSession shared by every HTTP/WebSocket provider in the process.

Connection reuse matters for latency (TLS handshakes per sentence add up). Each
serving ``Patter`` holds the session and releases it when it stops; the last one
out closes it (``close_shared_session()`` closes it at once, for tests and tools).
"""

from __future__ import annotations

import asyncio

import aiohttp

_session: aiohttp.ClientSession | None = None
_loop: asyncio.AbstractEventLoop | None = None
_holders = 0


def shared_session() -> aiohttp.ClientSession:
    """The process's session, created on first use in the running loop."""
    global _session, _loop
    loop = asyncio.get_running_loop()
    if _session is None or _session.closed or _loop is not loop:
        _session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        _loop = loop
    return _session


async def close_shared_session() -> None:
    global _session, _loop
    session, _session, _loop = _session, None, None
    if session is not None and not session.closed:
        await session.close()


def hold_shared_session() -> None:
    """A server starts: the session must outlive its calls."""
    global _holders
    _holders += 1


async def release_shared_session() -> None:
    """A server stopped; the last one to stop closes the session."""
    global _holders
    _holders = max(_holders - 1, 0)
    if _holders == 0:
        await close_shared_session()
