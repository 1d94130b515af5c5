"""Run patterd with known fake secrets through a whole call, then grep everything it
wrote — its log (stderr, at debug level), the event stream, the call store, every
file under its directories — for those secrets. Also: the control socket is 0600
in a 0700 directory."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from patter_core.testing import SimulatedTwilio, tone_mulaw
from patter_core.testing.daemon import free_port
from patterd.client import PatterClient
from tests.support.daemon_calls import history, no_live, until
from tests.support.fixtures import short_tmp_dir
from tests.test_daemon_sdk import _daemon

TOKEN = "twilio-SECRET-3f9a1c77e2b84d51"
OPENAI = "sk-test-SECRET-openai-8d2c61f0"
STORED = "cred-SECRET-stored-5b7e19aa"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


async def _event_frames(socket: Path) -> list[str]:
    """Every event the daemon kept, as the raw JSON frames a client receives."""
    frames: list[str] = []
    conn = aiohttp.UnixConnector(path=str(socket))
    async with (
        aiohttp.ClientSession(connector=conn) as session,
        session.ws_connect("http://patterd/v1/events", params={"since": "0"}) as ws,
    ):
        for _ in range(10_000):
            try:
                msg = await ws.receive(timeout=0.5)
            except TimeoutError:
                break
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            frames.append(msg.data)
    return frames


def _files(root: Path) -> dict[str, str]:
    out = {}
    for path in root.rglob("*"):
        # The test keyring file is where stored credentials live by design.
        if path.is_file() and path.name != "keyring.json":
            out[str(path.relative_to(root))] = path.read_bytes().decode("utf-8", "replace")
    return out


async def test_no_secret_is_ever_written(short_tmp: Path) -> None:
    port = free_port()
    async with SimulatedTwilio(auth_token=TOKEN) as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        daemon = _daemon(short_tmp, sim, port)
        daemon.env["OPENAI_API_KEY"] = OPENAI
        daemon.env["PATTERD_LOG_LEVEL"] = "DEBUG"
        await asyncio.to_thread(daemon.start)
        try:
            mode = daemon.socket_path.stat().st_mode
            assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
            assert stat.S_IMODE(daemon.socket_path.parent.stat().st_mode) == 0o700
            async with PatterClient(daemon.socket_path) as client:
                await client.set_credential("EXAMPLE_API_KEY", STORED)
                call = await sim.inbound_call(from_="+15550007777")
                await until(client.live_calls)
                tone = tone_mulaw(440, 0.3)
                call.say(tone)
                await call.wait_heard(len(tone))
                # A forged webhook and a bad stream attempt get logged too.
                status, _ = await sim.post_webhook(
                    sim.webhook_url("voice"), {"CallSid": "CA1"}, signature="bm9wZQ=="
                )
                assert status == 403
                await call.hangup()
                await until(lambda: no_live(client))
                await until(lambda: history(client, 1))
                names = [c.name for c in await client.credentials()]
                assert "EXAMPLE_API_KEY" in names
            frames = await _event_frames(daemon.socket_path)
            assert any('"call.ended"' in f for f in frames), "the event stream was read"
            code, log = await asyncio.to_thread(daemon.stop)
            assert code == 0, log
        finally:
            daemon.__exit__(None, None, None)
    assert "call" in log.lower(), "the daemon's log was captured"
    written = {"stderr": log, "events": "\n".join(frames), **_files(short_tmp)}
    assert any(k.endswith("events.jsonl") for k in written), sorted(written)
    for secret in (TOKEN, OPENAI, STORED):
        leaks = [name for name, text in written.items() if secret in text]
        assert not leaks, f"{secret[:12]}… written to {leaks}"
