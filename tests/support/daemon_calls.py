"""Shared steps for tests that drive a patterd subprocess through a simulated carrier."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from patterd.client import PatterClient
from tests.support.daemon_proc import DaemonProcess, base_env

T = TypeVar("T")


def sdk_daemon(tmp: Path, config_text: str, env: dict[str, str]) -> DaemonProcess:
    """A patterd running the real SDK runtime with ``config_text`` and extra ``env``."""
    config = tmp / "patterd.toml"
    config.write_text(config_text)
    full_env = base_env(tmp)
    full_env.update(env)
    proc = DaemonProcess(tmp, config, env=full_env)
    i = proc.argv.index("--runtime")
    proc.argv[i + 1] = "patterd.sdk_runtime:create_runtime"
    return proc


async def until(predicate: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:
    async with asyncio.timeout(timeout):
        while not (result := await predicate()):
            await asyncio.sleep(0.1)
    return result


async def no_live(client: PatterClient) -> bool:
    return not await client.live_calls()


async def is_live(client: PatterClient, call_id: str) -> bool:
    return any(c.call_id == call_id for c in await client.live_calls())


async def history(client: PatterClient, n: int) -> list[dict[str, Any]] | None:
    """The ended calls, once there are at least ``n``."""
    page = await client.calls()
    done = [c for c in page.calls if c["status"] != "live"]
    return done if len(done) >= n else None
