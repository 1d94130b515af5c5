"""patterd killed with SIGKILL mid-call, then restarted: the call is recorded as
interrupted (not left "live" for ever), earlier finished calls are intact, and the
restarted daemon answers the next call."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from patter_core.testing import SimulatedTwilio, tone_mulaw
from patter_core.testing.daemon import free_port
from patterd.client import PatterClient
from tests.support.daemon_calls import history, no_live, until
from tests.support.fixtures import short_tmp_dir
from tests.test_daemon_sdk import _daemon


async def _committed(db: Path, want: dict[str, str]) -> bool:
    """Whether the index file itself holds each call with the status wanted."""

    def read() -> bool:
        if not db.exists():
            return False
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            for call_id, status in want.items():
                row = conn.execute("SELECT status FROM calls WHERE call_id = ?", (call_id,))
                found = row.fetchone()
                if found is None or found[0] != status:
                    return False
        return True

    return await asyncio.to_thread(read)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


async def test_sigkill_mid_call_then_restart_records_interrupted_and_serves(short_tmp):
    port = free_port()
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        daemon = _daemon(short_tmp, sim, port)
        await asyncio.to_thread(daemon.start)
        try:
            async with PatterClient(daemon.socket_path) as client:
                # One finished call: committed history that must survive the kill.
                done = await sim.inbound_call(from_="+15550001111")
                await until(client.live_calls)
                await done.hangup()
                await until(lambda: no_live(client))
                finished = await until(lambda: history(client, 1))
                # One call in progress when the daemon dies.
                call = await sim.inbound_call(from_="+15550002222")
                live = await until(client.live_calls)
                killed_id = live[0].call_id
                tone = tone_mulaw(440, 0.2)
                call.say(tone)
                await call.wait_heard(len(tone))
                # Kill only once both calls are committed, as the rows on disk show: the
                # store batches writes each second and a busy machine can delay that.
                db = short_tmp / "history" / "patter.db"
                want = {finished[0]["call_id"]: "completed", killed_id: "live"}
                await until(lambda: _committed(db, want), timeout=20)
            daemon.signal(signal.SIGKILL)
            assert await asyncio.to_thread(daemon.proc.wait, 10) == -signal.SIGKILL  # type: ignore[union-attr]
            # The carrier notices the socket went away.
            await call.wait_closed(timeout=10)
        finally:
            daemon.__exit__(None, None, None)

        again = _daemon(short_tmp, sim, port)
        await asyncio.to_thread(again.start)
        try:
            async with PatterClient(again.socket_path) as client:
                detail = await client.call(killed_id)
                assert detail.live is False
                assert detail.call["status"] == "interrupted", detail.call
                kept = await client.call(finished[0]["call_id"])
                assert kept.call["status"] == "completed"
                assert kept.call["caller"] == "+15550001111"
                # The restarted daemon serves the next call end to end.
                nxt = await sim.inbound_call(from_="+15550003333")
                await until(client.live_calls)
                tone = tone_mulaw(440, 0.2)
                nxt.say(tone)
                await nxt.wait_heard(len(tone))
                await nxt.hangup()
                await until(lambda: no_live(client))
                page = await until(lambda: history(client, 3))
                assert {c["status"] for c in page} == {"completed", "interrupted"}
            code, err = await asyncio.to_thread(again.stop)
            assert code == 0, err
        finally:
            again.__exit__(None, None, None)
