"""The store on real files: JSONL logs and a SQLite index."""

import asyncio
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from patter_core.bus import EventBus
from patter_core.events import (
    CallEnded,
    CallStarted,
    CostParts,
    Dtmf,
    ToolCalled,
    Transcript,
    TurnMetrics,
)
from patter_core.store import CallStore, redact_phone, resolve_root
from patter_core.store import index as store_index

ROOT = Path(__file__).resolve().parents[1]


def _call(call_id: str, *, ts: datetime | None = None, turns: int = 2) -> list:
    ts = ts or datetime.now(UTC)
    events = [
        CallStarted(
            call_id=call_id,
            direction="inbound",
            caller="+15550001111",
            callee="+15550002222",
            ts=ts,
        )
    ]
    for t in range(1, turns + 1):
        events.append(Transcript(call_id=call_id, role="caller", text=f"hello {t}", turn=t, ts=ts))
        events.append(Transcript(call_id=call_id, role="agent", text=f"hi {t}", turn=t, ts=ts))
        events.append(
            TurnMetrics(
                call_id=call_id, turn=t, cost=CostParts(llm=0.001), total_cost=0.001 * t, ts=ts
            )
        )
    events.append(
        CallEnded(
            call_id=call_id,
            reason="hangup",
            duration_s=60.0,
            turns=turns,
            cost=CostParts(carrier=0.0085, llm=0.002),
            ts=ts + timedelta(seconds=60),
        )
    )
    for seq, ev in enumerate(events, 1):
        ev.seq = seq
    return events


def _folder(root: Path, call_id: str) -> Path:
    return next((root / "calls").glob(f"*/{call_id}"))


async def test_live_events_reach_both_logs_and_index(tmp_path):
    bus = EventBus()
    store = CallStore(tmp_path)
    store.attach(bus)
    for ev in _call("c1"):
        ev.seq = 0
        bus.publish(ev)
    await store.detach()
    folder = _folder(tmp_path, "c1")
    lines = (folder / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["type"] == "call.started" and len(lines) == 8
    transcript = [json.loads(x) for x in (folder / "transcript.jsonl").read_text().splitlines()]
    assert [t["text"] for t in transcript] == ["hello 1", "hi 1", "hello 2", "hi 2"]
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["caller"] == "+15550001111"
    call = store.get_call("c1")
    assert call is not None and call["status"] == "completed" and call["duration_s"] == 60.0
    assert [t["text"] for t in call["transcript"]] == ["hello 1", "hi 1", "hello 2", "hi 2"]
    assert [t["turn"] for t in call["turns_detail"]] == [1, 2]
    assert call["cost"]["total"] == pytest.approx(0.0105)
    store.close()


async def test_half_an_emoji_in_one_call_loses_no_record_of_another(tmp_path):
    """A lone surrogate (half of an emoji in a model's tool arguments) used to
    stop the batch it was in: a call whose start and end shared that batch was
    left with no history row at all."""
    bus = EventBus()
    store = CallStore(tmp_path)
    store.attach(bus)
    a = _call("a", turns=1)
    for ev in a[:-1]:
        ev.seq = 0
        bus.publish(ev)
    bus.publish(
        ToolCalled(
            call_id="b", tool_call_id="t1", name="weather", arguments={"city": "\ud83d Paris"}
        )
    )
    bus.publish(Transcript(call_id="b", role="caller", text="caf\udce9 au lait", turn=1))
    a[-1].seq = 0
    bus.publish(a[-1])
    await asyncio.wait_for(store.detach(), 10)
    call = store.get_call("a")
    assert call is not None and call["status"] == "completed"
    b_lines = (_folder(tmp_path, "b") / "events.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(b_lines[0])["arguments"] == {"city": "\ufffd Paris"}
    b_said = (_folder(tmp_path, "b") / "transcript.jsonl").read_text(encoding="utf-8")
    assert json.loads(b_said)["text"] == "caf\ufffd au lait"
    assert store.dropped == 0
    store.close()


def test_an_event_that_cannot_be_encoded_is_skipped_alone(tmp_path):
    """Belt and braces under the events' own scrubbing: an event built without
    validation, carrying text that cannot be UTF-8, is skipped by itself."""
    store = CallStore(tmp_path)
    events = _call("a", turns=1)
    bad = Transcript.model_construct(
        call_id="a", seq=99, ts=events[0].ts, role="caller", text="\ud83d", final=True, turn=1
    )
    store.write_events([*events[:-1], bad, events[-1]])
    call = store.get_call("a")
    assert call is not None and call["status"] == "completed"
    assert [t["text"] for t in call["transcript"]] == ["hello 1", "hi 1"]
    assert store.dropped == 1 and store.written == len(events) + 1
    store.close()


def test_files_are_private(tmp_path):
    store = CallStore(tmp_path)
    store.write_events(_call("c1"))
    folder = _folder(tmp_path, "c1")
    for path in [folder, folder.parent, tmp_path / "calls"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for name in ("events.jsonl", "transcript.jsonl", "metadata.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "patter.db").stat().st_mode) == 0o600
    store.close()


def test_sigkill_mid_call_then_restart_loses_nothing_committed(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "store_writer_proc.py"), str(tmp_path), "40"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"committed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    store = CallStore(tmp_path)
    assert store.hydrate() == 1
    assert store.hydrate() == 0  # idempotent
    call = store.get_call("killed")
    assert call is not None and call["status"] == "interrupted"
    assert [t["text"] for t in call["transcript"]] == [f"line {i}" for i in range(40)]
    lines = (_folder(tmp_path, "killed") / "events.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "call.ended"
    assert json.loads(lines[-1])["reason"] == "interrupted"
    assert json.loads(lines[-1])["seq"] == 42
    store.close()


def test_rebuild_from_logs_matches_the_live_index(tmp_path):
    store = CallStore(tmp_path)
    for i in range(5):
        store.write_events(_call(f"c{i}", turns=i + 1))
    before = [store.get_call(f"c{i}") for i in range(5)]
    assert store.rebuild_index() == 5
    after = [store.get_call(f"c{i}") for i in range(5)]
    assert before == after
    store.close()


def test_corrupted_and_truncated_lines_are_skipped(tmp_path, caplog):
    store = CallStore(tmp_path)
    store.write_events(_call("c1"))
    log = _folder(tmp_path, "c1") / "events.jsonl"
    lines = log.read_text().splitlines()
    lines.insert(2, "{not json")
    lines.insert(4, '{"type": "transcript", "call_id": "c1"')  # torn write
    lines.insert(5, '{"type": "mystery", "call_id": "c1"}')
    log.write_text("\n".join(lines) + "\n")
    assert store.rebuild_index() == 1
    call = store.get_call("c1")
    assert call is not None and call["status"] == "completed" and len(call["transcript"]) == 4
    assert caplog.text.count("skipping unreadable event") == 3
    store.close()


def test_retention_sweeps_old_days_only(tmp_path):
    store = CallStore(tmp_path, retention_days=30)
    old = datetime(2026, 1, 1, tzinfo=UTC)
    store.write_events(_call("old", ts=old))
    store.write_events(_call("new"))
    assert store.sweep_retention(today=date(2026, 3, 1)) == 1
    assert store.get_call("old") is None and store.get_call("new") is not None
    assert not (tmp_path / "calls" / "2026-01-01").exists()
    forever = CallStore(tmp_path / "f", retention_days=0)
    forever.write_events(_call("old", ts=old))
    assert forever.sweep_retention(today=date(2030, 1, 1)) == 0
    store.close()
    forever.close()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("full", "+15550001111"), ("mask", "********1111"), ("hash_only", "sha256:")],
)
def test_redaction_modes(tmp_path, mode, expected):
    store = CallStore(tmp_path, redact=mode)
    store.write_events(_call("c1"))
    folder = _folder(tmp_path, "c1")
    meta = json.loads((folder / "metadata.json").read_text())
    first = json.loads((folder / "events.jsonl").read_text().splitlines()[0])
    row = store.get_call("c1")
    assert row is not None
    for value in (meta["caller"], first["caller"], row["caller"]):
        assert value.startswith(expected) if mode == "hash_only" else value == expected
    if mode != "full":
        everything = b"".join(p.read_bytes() for p in folder.iterdir())
        assert b"5550001111" not in everything
        assert b"hello 1" in everything  # transcripts are never redacted
    store.close()


def test_redact_phone_function():
    assert redact_phone("+15550001111", "mask") == "********1111"
    assert redact_phone("+15550001111", "hash_only") == redact_phone("+15550001111", "hash_only")
    assert redact_phone("", "mask") == ""


async def test_many_concurrent_calls_interleaved(tmp_path):
    bus = EventBus()
    store = CallStore(tmp_path)
    store.attach(bus)
    calls = [_call(f"c{i:02d}") for i in range(50)]
    for step in range(max(len(c) for c in calls)):
        for events in calls:
            if step < len(events):
                ev = events[step]
                ev.seq = 0
                bus.publish(ev)
    await store.detach()
    assert store.count_calls() == 50
    assert store.count_calls(status="completed") == 50
    for i in range(50):
        lines = (_folder(tmp_path, f"c{i:02d}") / "events.jsonl").read_text().splitlines()
        assert [json.loads(x)["seq"] for x in lines] == list(range(1, 9))
    store.close()


async def test_a_slow_disk_never_blocks_the_publisher(tmp_path):
    bus = EventBus()
    store = CallStore(tmp_path)
    gate = threading.Event()
    store._pool.submit(gate.wait)  # the writer thread is stuck, as on a stalled disk
    store.attach(bus)
    bus.publish(CallStarted(call_id="s", direction="inbound"))
    for i in range(2000):
        bus.publish(Dtmf(call_id="s", digit=str(i % 10)))
    # Publishing returned without the disk: nothing is written yet, nothing was dropped.
    await asyncio.sleep(0.1)
    assert store.written == 0 and bus.dropped_total == 0
    gate.set()
    await store.detach()
    assert store.written == 2001
    lines = (_folder(tmp_path, "s") / "events.jsonl").read_text().splitlines()
    assert len(lines) == 2001
    store.close()


def test_queries_filter_page_and_total_by_day(tmp_path):
    store = CallStore(tmp_path)
    day1 = datetime(2026, 11, 20, 9, tzinfo=UTC)
    day2 = datetime(2026, 11, 21, 9, tzinfo=UTC)
    for i in range(3):
        store.write_events(_call(f"a{i}", ts=day1 + timedelta(minutes=i)))
    store.write_events(_call("b0", ts=day2))
    assert [c["call_id"] for c in store.list_calls(limit=2)] == ["b0", "a2"]
    assert [c["call_id"] for c in store.list_calls(limit=2, offset=2)] == ["a1", "a0"]
    assert len(store.list_calls(since=day2)) == 1
    assert len(store.list_calls(number="+15550002222")) == 4
    assert store.list_calls(text="hello 2")[0]["call_id"] == "b0"
    totals = store.totals_by_day()
    assert [(t["day"], t["calls"], t["minutes"]) for t in totals] == [
        ("2026-11-20", 3, 3.0),
        ("2026-11-21", 1, 1.0),
    ]
    assert totals[0]["cost"] == pytest.approx(0.0315)
    store.close()


def test_migrations_bring_an_old_database_up_to_date(tmp_path):
    db = Database(sqlite3.connect(tmp_path / "patter.db"))
    # A database from before m002: apply only the first migration by hand.
    store_index.m001_calls(db)
    db["_sqlite_migrations"].insert(
        {"migration_set": "patter.store", "name": "m001_calls", "applied_at": "2026-01-01"}
    )
    db.conn.close()
    store = CallStore(tmp_path)
    assert "costs" in store._reader_db.table_names()
    store.write_events(_call("c1"))
    assert store.get_call("c1")["cost"] is not None  # type: ignore[index]
    store.close()


def test_persist_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("PATTER_LOG_DIR", raising=False)
    default = resolve_root(True)
    assert default is not None and default.name == "patter"
    assert resolve_root(None) == default
    assert resolve_root(False) is None
    monkeypatch.setenv("PATTER_LOG_DIR", str(tmp_path / "logs"))
    assert resolve_root(None) == tmp_path / "logs"
    assert resolve_root(False) is None
    monkeypatch.setenv("PATTER_LOG_DIR", "auto")
    assert resolve_root(None) == default
    assert resolve_root("~/x") == Path("~/x").expanduser()


def test_metadata_of_a_live_call_already_names_its_parties(tmp_path):
    store = CallStore(tmp_path)
    store.write_events(_call("c1")[:1])  # only call.started: the call is still live
    meta = json.loads((_folder(tmp_path, "c1") / "metadata.json").read_text())
    assert meta["status"] == "live"
    assert meta["caller"] == "+15550001111" and meta["direction"] == "inbound"
    store.close()
