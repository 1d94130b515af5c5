"""Public hostnames for the embedded server: a Cloudflare quick tunnel or a fixed host.

``cloudflared tunnel --url http://127.0.0.1:PORT`` prints the public
``https://….trycloudflare.com`` address on stderr once the tunnel is up; we
run it as a child process, read that line, and stop it on disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

_URL_RE = re.compile(rb"https://([a-z0-9][a-z0-9-]*\.trycloudflare\.com)")


class TunnelError(RuntimeError):
    pass


@dataclass
class Static:
    """A hostname you already route to this server (reverse proxy, ngrok, load balancer)."""

    hostname: str

    def __post_init__(self) -> None:
        self.hostname = normalize_host(self.hostname)

    async def start(self, port: int) -> str:
        return self.hostname

    async def stop(self) -> None:
        return None


@dataclass
class CloudflareTunnel:
    """A Cloudflare quick tunnel; needs ``cloudflared`` on PATH (or ``binary=``)."""

    binary: str = "cloudflared"
    start_timeout: float = 30.0
    extra_args: list[str] = field(default_factory=list)
    _proc: asyncio.subprocess.Process | None = field(default=None, init=False, repr=False)
    _drain: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def start(self, port: int) -> str:
        path = shutil.which(self.binary)
        if path is None:
            raise TunnelError(
                f"tunnel=True needs '{self.binary}' on PATH; install cloudflared "
                "(https://developers.cloudflare.com/cloudflare-one/connections/connect-networks/"
                "downloads/) or pass webhook_url= with a host you already route here"
            )
        self._proc = await asyncio.create_subprocess_exec(
            path,
            "tunnel",
            "--no-autoupdate",
            "--url",
            f"http://127.0.0.1:{port}",
            *self.extra_args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            host = await asyncio.wait_for(self._read_hostname(), self.start_timeout)
        except TimeoutError:
            await self.stop()
            raise TunnelError(
                f"cloudflared printed no tunnel URL within {self.start_timeout:.0f} s"
            ) from None
        except BaseException:
            await self.stop()
            raise
        # Keep reading stderr so cloudflared never blocks on a full pipe.
        self._drain = asyncio.create_task(self._drain_stderr())
        log.info("cloudflare tunnel up at https://%s", host)
        return host

    async def _read_hostname(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            line = await self._proc.stderr.readline()
            if not line:
                code = await self._proc.wait()
                raise TunnelError(f"cloudflared exited with code {code} before the tunnel was up")
            if m := _URL_RE.search(line):
                return m.group(1).decode()

    async def _drain_stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while await self._proc.stderr.readline():
            pass

    async def stop(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
            self._drain = None
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


Tunnel = CloudflareTunnel | Static


def normalize_host(value: str) -> str:
    """``https://abc.ngrok.io/`` → ``abc.ngrok.io``: webhook_url is a host, not a URL."""
    host = value.strip()
    for prefix in ("https://", "http://", "wss://", "ws://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
    host = host.rstrip("/")
    if not host or "/" in host or " " in host:
        raise ValueError(f"webhook_url must be a hostname like 'abc.ngrok.io', got {value!r}")
    return host
