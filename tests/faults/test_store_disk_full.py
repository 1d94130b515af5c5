"""Disk full under the store: calls keep being served, nothing already written is
lost, and what could not be written goes out once there is room again.

Two ways to fill the disk: a real 1 MB tmpfs (needs root to mount; skipped
otherwise), and an injected writer that raises ENOSPC through the store's own
file and index paths (runs everywhere)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from patter_core.bus import EventBus
from patter_core.store import CallStore
from patter_core.store import files as store_files
from patter_core.store import index as store_index
from patter_core.store import store as store_mod
from patter_core.testing import tone_mulaw
from tests.test_store import _call
from tests.twilio_harness import twilio_rig


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    mnt = Path("/tmp") / f"patter-full-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is None or done.returncode != 0:
        mnt.rmdir()
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)
        with contextlib.suppress(OSError):
            mnt.rmdir()


def _fill(path: Path) -> None:
    """Write ``path`` until the filesystem says ENOSPC (bounded by the fs size)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for _ in range(1_000_000):
            os.write(fd, b"x" * 512)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    else:
        raise AssertionError("the filesystem never filled")
    finally:
        os.close(fd)


def _lines(root: Path, call_id: str) -> list[dict[str, Any]]:
    folder = next((root / "calls").glob(f"*/{call_id}"))
    return [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]


async def test_calls_are_served_while_the_disk_is_full_and_recorded_once_it_is_not(tiny_fs):
    root = tiny_fs / "history"
    async with twilio_rig(persist=str(root)) as rig:
        store = rig.phone.store
        assert store is not None
        first = await rig.sim.inbound_call(from_="+15550001111")
        one = await rig.next_event("call.started")
        await first.hangup()
        await rig.next_event("call.ended")
        filler = tiny_fs / "filler"
        _fill(filler)
        # A whole call on a full disk: audio still flows, the call still ends.
        call = await rig.sim.inbound_call(from_="+15550002222")
        two = await rig.next_event("call.started")
        tone = tone_mulaw(440, 0.3)
        call.say(tone)
        await call.wait_heard(len(tone))
        await call.hangup()
        await rig.next_event("call.ended")
        async with asyncio.timeout(10):
            while store.write_errors == 0:
                await asyncio.sleep(0.05)
        filler.unlink()
        # The next call after the disk has room again.
        third = await rig.sim.inbound_call(from_="+15550003333")
        three = await rig.next_event("call.started")
        await third.hangup()
        await rig.next_event("call.ended")
    # All three are recorded with a final status, logs and index agreeing.
    again = CallStore(root)
    try:
        assert again.hydrate() == 0
        for started in (one, two, three):
            row = again.get_call(started.call_id)
            assert row is not None and row["status"] == "completed", row
            types = [e["type"] for e in _lines(root, started.call_id)]
            assert types[0] == "call.started" and types[-1] == "call.ended"
        assert again.get_call(one.call_id)["caller"] == "+15550001111"  # type: ignore[index]
    finally:
        again.close()


class _Disk:
    """A switch for the injected failures below."""

    full = False


class _FlakyFile(io.FileIO):
    def write(self, b: Any) -> int:
        if _Disk.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(b)


@pytest.fixture
def flaky_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Disk]]:
    real_apply = store_index.apply
    real_atomic = store_files.write_json_atomic

    def open_append(path: Path) -> Any:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return io.TextIOWrapper(io.BufferedWriter(_FlakyFile(fd, "a")), encoding="utf-8")

    def apply(*args: Any, **kwargs: Any) -> None:
        if _Disk.full:
            raise sqlite3.OperationalError("database or disk is full")
        real_apply(*args, **kwargs)

    def write_json_atomic(*args: Any) -> None:
        if _Disk.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_atomic(*args)

    monkeypatch.setattr(store_files, "open_append", open_append)
    monkeypatch.setattr(store_index, "apply", apply)
    monkeypatch.setattr(store_mod, "write_json_atomic", write_json_atomic)
    _Disk.full = False
    yield _Disk
    _Disk.full = False


async def test_injected_enospc_loses_nothing_and_the_writer_keeps_going(tmp_path, flaky_disk):
    bus = EventBus()
    store = CallStore(tmp_path)
    store.attach(bus)
    ok = _call("before")
    for ev in ok:
        ev.seq = 0
        bus.publish(ev)
    await asyncio.wait_for(store.flushed(len(ok)), 5)
    flaky_disk.full = True
    during = _call("during", turns=10)
    for ev in during:
        ev.seq = 0
        bus.publish(ev)
    # The writer neither hangs nor dies; it says what failed.
    await asyncio.wait_for(store.flushed(len(ok) + len(during)), 5)
    assert store.write_errors > 0 and store.dropped == 0
    assert store.get_call("before")["status"] == "completed"  # type: ignore[index]
    assert store.get_call("during") is None
    flaky_disk.full = False
    after = _call("after")
    for ev in after:
        ev.seq = 0
        bus.publish(ev)
    await asyncio.wait_for(store.flushed(len(ok) + len(during) + len(after)), 5)
    await store.detach()
    for call_id, events in (("before", ok), ("during", during), ("after", after)):
        row = store.get_call(call_id)
        assert row is not None and row["status"] == "completed", (call_id, row)
        assert len(row["transcript"]) == sum(e.type == "transcript" for e in events)
        assert len(_lines(tmp_path, call_id)) == len(events)
    store.close()


async def test_disk_still_full_at_shutdown_is_logged_and_the_call_marked_at_restart(
    tmp_path, flaky_disk, caplog
):
    bus = EventBus()
    store = CallStore(tmp_path)
    store.attach(bus)
    events = _call("c1")
    for ev in events[:3]:
        ev.seq = 0
        bus.publish(ev)
    await asyncio.wait_for(store.flushed(3), 5)
    flaky_disk.full = True
    for ev in events[3:]:
        ev.seq = 0
        bus.publish(ev)
    await asyncio.wait_for(store.flushed(len(events)), 5)
    await store.detach()  # must not hang or raise
    store.close()
    assert "tail lost" in caplog.text
    flaky_disk.full = False
    again = CallStore(tmp_path)
    # What was committed before the disk filled survives; the call is explained.
    assert again.hydrate() == 1
    row = again.get_call("c1")
    assert row is not None and row["status"] == "interrupted"
    assert [t["text"] for t in row["transcript"]] == ["hello 1", "hi 1"]
    again.close()
