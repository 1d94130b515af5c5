"""Headless Chromium driven over the DevTools protocol (one page, aiohttp WebSocket).

Enough for the dashboard's end-to-end test: navigate, evaluate, wait for a
condition, take a screenshot. Only 127.0.0.1; the browser never fetches anything
else (no first-run, sync, component updates or background networking).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
_LISTENING = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")


def executable() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def available() -> bool:
    return executable() is not None


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read(), name="cdp-reader")

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            fut = self._pending.pop(data.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(data)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("DevTools socket closed"))

    async def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        self._id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._id] = fut
        await self.ws.send_json({"id": self._id, "method": method, "params": params})
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        async with asyncio.timeout(timeout):
            while not (value := await self.evaluate(expression)):
                await asyncio.sleep(0.1)
            return value

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.wait_for(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        )

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def chromium_page(width: int = 1200, height: int = 800) -> AsyncIterator[Page]:
    """A fresh headless Chromium (own profile) and its first page; killed afterwards."""
    exe = executable()
    if exe is None:
        raise RuntimeError("chromium is not installed")
    # Chromium's helpers can outlive the browser for a moment: tolerate a busy profile.
    with tempfile.TemporaryDirectory(prefix="patter-chromium-", ignore_cleanup_errors=True) as tmp:
        log_path = Path(tmp) / "stderr.log"
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                f"--window-size={width},{height}",
                f"--user-data-dir={tmp}/profile",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
                start_new_session=True,  # its own group: the helpers go with it
            )
        try:
            port = await _devtools_port(log_path, proc)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    targets = await resp.json()
                page_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                ws = await asyncio.wait_for(
                    http.ws_connect(page_url, max_msg_size=64 * 1024 * 1024), 30
                )
                page = Page(ws)
                try:
                    await page.send("Page.enable")
                    await page.send("Runtime.enable")
                    yield page
                finally:
                    await page.close()
        finally:
            await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """End the browser and its helpers (the process group it leads), then reap it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
            break
        except TimeoutError:
            continue
    await asyncio.sleep(0.2)  # let the helpers finish dying before the profile is removed


async def _devtools_port(log_path: Path, proc: asyncio.subprocess.Process) -> int:
    async with asyncio.timeout(30):
        while True:
            match = _LISTENING.search(_read(log_path))
            if match:
                return int(match.group(2))
            if proc.returncode is not None:
                raise RuntimeError(f"chromium exited: {_read(log_path)}")
            await asyncio.sleep(0.1)
