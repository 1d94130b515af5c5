"""``CallStore``: writes every event of every call, and answers history queries.

Writing happens off the call's hot path: a subscriber task drains the bus
in batches and hands them to one worker thread, which appends to the JSONL
logs and folds them into the SQLite index. A batch is written at least every
second and at every call end, so a slow disk delays history, never audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from patter_core.bus import EventBus, Gap, Subscription
from patter_core.events import BaseEvent, CallEnded, parse_event
from patter_core.store import index
from patter_core.store.files import CallFiles, make_dir, write_json_atomic
from patter_core.store.redact import RedactMode, mode_from_env, redact_phone

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 1.0
BATCH_MAX = 500
BACKLOG_MAX = 50_000
QUEUE_MAX = 200_000
SWEEP_EVERY_N_CALLS = 50


def retention_from_env() -> int:
    value = os.environ.get("PATTER_LOG_RETENTION_DAYS", "30").strip() or "30"
    days = int(value)
    if days < 0:
        raise ValueError("PATTER_LOG_RETENTION_DAYS must be 0 (keep forever) or more")
    return days


class CallStore:
    def __init__(
        self,
        root: Path | str,
        *,
        retention_days: int | None = None,
        redact: RedactMode | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        self.retention_days = retention_from_env() if retention_days is None else retention_days
        self.redact: RedactMode = mode_from_env() if redact is None else redact
        make_dir(self.root)
        make_dir(self.root / "calls")
        db_path = self.root / "patter.db"
        self._writer_db = index.connect(db_path)
        os.chmod(db_path, 0o600)
        self._reader_db = index.connect(db_path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="patter-store")
        self._open: dict[str, CallFiles] = {}
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._ended_since_sweep = 0
        self._closing: dict[str, CallFiles] = {}
        self._backlog: list[BaseEvent] = []
        self.written = 0
        """Events the writer has handled (logged, or kept to retry)."""
        self.dropped = 0
        self.write_errors = 0
        self._written_changed = asyncio.Condition()

    # --- lifecycle -----------------------------------------------------------

    def attach(self, bus: EventBus) -> None:
        """Start persisting everything published on ``bus``."""
        self._sub = bus.subscribe(maxsize=QUEUE_MAX, name="store")
        self._task = asyncio.create_task(self._drain(self._sub), name="patter-store")

    async def detach(self) -> None:
        """Write what is queued, then stop; the logs are complete afterwards."""
        if self._sub is not None:
            self._sub.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close_all)

    async def flushed(self, count: int) -> None:
        """Wait until ``count`` events have been written (tests, tools, graceful stops)."""
        async with self._written_changed:
            await self._written_changed.wait_for(lambda: self.written >= count)

    def close(self) -> None:
        self._close_all()
        self._pool.shutdown(wait=True)
        self._writer_db.conn.close()
        self._reader_db.conn.close()

    async def _drain(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        closed = False
        while not closed:
            batch: list[BaseEvent] = []
            deadline = loop.time() + FLUSH_INTERVAL_S
            while len(batch) < BATCH_MAX:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(sub.get(), timeout)
                except TimeoutError:
                    break
                except StopAsyncIteration:
                    closed = True
                    break
                if isinstance(item, Gap):
                    self.dropped += item.missed
                    log.error("store fell behind and lost %d events", item.missed)
                    continue
                batch.append(item)
                if getattr(item, "type", "") == "call.ended":
                    break  # write a call's end at once
            if batch:
                try:
                    await loop.run_in_executor(self._pool, self._write_batch, batch)
                except Exception:
                    log.exception("store failed to write %d events", len(batch))
                    self.written += len(batch)  # counted as handled, so flushed() returns
                async with self._written_changed:
                    self._written_changed.notify_all()

    # --- writing (worker thread) ---------------------------------------------------

    def write_events(self, events: Iterable[BaseEvent]) -> None:
        """Write synchronously (tools, tests, rebuilds); same path as the live writer."""
        self._write_batch(list(events))

    def _write_batch(self, batch: list[BaseEvent]) -> None:
        """Append ``batch`` to the logs, then fold it (and any backlog) into the index.

        A full or failing disk loses nothing already written and never stops the
        writer: log lines that could not be flushed stay buffered in their open
        handle and go out with the next flush; events the index could not take are
        kept (up to ``BACKLOG_MAX``) and applied again with the next batch, which
        is safe because ``index.apply`` is an upsert.
        """
        touched: set[str] = set()
        unusable: set[int] = set()
        for event in batch:
            try:
                self._log_one(event)
                touched.add(event.call_id)
            except OSError as exc:
                self.write_errors += 1
                log.error("call %s: could not log event %s: %s", event.call_id, event.seq, exc)
            except ValueError as exc:
                unusable.add(id(event))
                self._skip(event, exc)
        todo = [*self._backlog, *(e for e in batch if id(e) not in unusable)]
        try:
            with self._writer_db.conn:
                for event in todo:
                    try:
                        self._index_one(event)
                    except ValueError as exc:
                        self._skip(event, exc)
            self._backlog = []
        except (sqlite3.Error, OSError) as exc:
            self.write_errors += 1
            lost = max(len(todo) - BACKLOG_MAX, 0)
            self._backlog = todo[lost:]
            self.dropped += lost
            log.error(
                "store index write failed (%s); %d events kept to retry, %d dropped",
                exc,
                len(self._backlog),
                lost,
            )
        for call_id in touched:
            files = self._open.get(call_id)
            if files is not None:
                self._try(files.flush, call_id)
        for call_id, files in list(self._closing.items()):
            if self._try(files.close, call_id):
                del self._closing[call_id]
        self.written += len(batch)

    def _skip(self, event: BaseEvent, exc: ValueError) -> None:
        """One event that cannot be written (bad data, not a bad disk) is left
        out alone; the rest of its batch, other calls' events among them, is kept."""
        self.dropped += 1
        log.error(
            "call %s: event %s (%s) cannot be stored, skipped: %s",
            event.call_id,
            event.seq,
            getattr(event, "type", "?"),
            type(exc).__name__,
        )

    def _try(self, action: Callable[[], None], call_id: str) -> bool:
        try:
            action()
        except OSError as exc:
            self.write_errors += 1
            log.error("call %s: could not flush its logs (kept buffered): %s", call_id, exc)
            return False
        return True

    def _fields(self, event: BaseEvent) -> dict[str, Any]:
        return {
            "direction": getattr(event, "direction", ""),
            "caller": redact_phone(getattr(event, "caller", ""), self.redact),
            "callee": redact_phone(getattr(event, "callee", ""), self.redact),
            "carrier": getattr(event, "carrier", ""),
            "agent": getattr(event, "agent", ""),
        }

    def _folder_for(self, event: BaseEvent) -> Path:
        files = self._open.get(event.call_id)
        if files is not None:
            return files.folder
        row = self._writer_db.execute(
            "select folder from calls where call_id = ?", [event.call_id]
        ).fetchone()
        if row is not None and row[0]:
            return self.root / str(row[0])
        return self.root / "calls" / event.ts.date().isoformat() / event.call_id

    def _log_one(self, event: BaseEvent) -> None:
        files = self._open.get(event.call_id)
        if files is None:
            files = CallFiles(self._folder_for(event))
            self._open[event.call_id] = files
        line = self._redacted(event).model_dump_json()
        files.events.write(line + "\n")
        if getattr(event, "type", "") == "transcript" and getattr(event, "final", True):
            files.transcript.write(
                json.dumps(
                    {
                        "ts": event.ts.isoformat(),
                        "role": event.role,  # type: ignore[attr-defined]
                        "text": event.text,  # type: ignore[attr-defined]
                        "interrupted": event.interrupted,  # type: ignore[attr-defined]
                        "turn": event.turn,  # type: ignore[attr-defined]
                    }
                )
                + "\n"
            )

    def _index_one(self, event: BaseEvent) -> None:
        kind = getattr(event, "type", "")
        folder = self._folder_for(event)
        rel = str(folder.relative_to(self.root))
        # Only call.started carries the caller's details; the index row comes first so
        # that metadata.json, built from that row, has them from the call's start.
        index.apply(
            self._writer_db, event, rel, self._fields(event) if kind == "call.started" else {}
        )
        if kind == "call.started":
            self._write_metadata(event.call_id, folder, status="live")
        elif kind == "call.ended":
            self._write_metadata(event.call_id, folder, ended=event)
            files = self._open.pop(event.call_id, None)
            if files is not None:
                self._closing[event.call_id] = files
            self._ended_since_sweep += 1
            if self._ended_since_sweep >= SWEEP_EVERY_N_CALLS:
                self._ended_since_sweep = 0
                self._sweep()

    def _redacted(self, event: BaseEvent) -> BaseEvent:
        if self.redact == "full" or not hasattr(event, "caller"):
            return event
        return event.model_copy(
            update={
                "caller": redact_phone(getattr(event, "caller", ""), self.redact),
                "callee": redact_phone(getattr(event, "callee", ""), self.redact),
            }
        )

    def _write_metadata(
        self, call_id: str, folder: Path, *, status: str = "", ended: BaseEvent | None = None
    ) -> None:
        row = self._writer_db.execute("select * from calls where call_id = ?", [call_id])
        found = row.fetchone()
        meta: dict[str, Any] = index.row_dict(row, found) if found is not None else {}
        meta.pop("folder", None)
        if status:
            meta["status"] = status
        if ended is not None:
            meta["cost"] = (
                ended.cost.model_dump() if getattr(ended, "cost", None) is not None else None  # type: ignore[attr-defined]
            )
        write_json_atomic(folder / "metadata.json", meta)

    def _close_all(self) -> None:
        if self._backlog:
            self._write_batch([])  # one more try at what the index could not take
        for call_id, files in [*self._open.items(), *self._closing.items()]:
            try:
                files.close()
            except OSError as exc:
                # Still no room: what is buffered now is lost; say so, and free the handles.
                log.error("call %s: closing its logs failed, tail lost: %s", call_id, exc)
                for fh in (files.events, files.transcript):
                    with contextlib.suppress(OSError):
                        fh.close()
        self._open.clear()
        self._closing.clear()

    # --- start-up -------------------------------------------------------------------

    def hydrate(self) -> int:
        """Mark calls left live by a process that died as ``interrupted``; returns how many.

        Reads only the index (start-up cost does not grow with history), then
        appends a ``call.ended`` to each such call's log so logs and index agree.
        Safe to call again: a call is only ever ended once.
        """
        rows = self._writer_db.execute(
            "select call_id, started_at, folder from calls where status = 'live'"
        ).fetchall()
        open_now = set(self._open)
        ended = []
        for call_id, started_at, folder in rows:
            if call_id in open_now:
                continue
            last = self._last_event_time(self.root / folder) if folder else None
            start = _parse_ts(started_at)
            duration = (last - start).total_seconds() if last and start else 0.0
            ended.append(
                CallEnded(
                    call_id=call_id,
                    reason="interrupted",
                    status="interrupted",
                    duration_s=max(duration, 0.0),
                    seq=self._last_seq(self.root / folder) + 1 if folder else 0,
                )
            )
        if ended:
            self.write_events(ended)
            log.warning(
                "marked %d calls interrupted (live when the last process stopped)", len(ended)
            )
        self._sweep()
        return len(ended)

    @staticmethod
    def _tail_events(folder: Path) -> Iterator[dict[str, Any]]:
        path = folder / "events.jsonl"
        if not path.exists():
            return
        with path.open("rb") as fh:
            fh.seek(max(path.stat().st_size - 16384, 0))
            for raw in fh.read().splitlines():
                with contextlib.suppress(ValueError):
                    item = json.loads(raw)
                    if isinstance(item, dict):
                        yield item

    def _last_event_time(self, folder: Path) -> datetime | None:
        times = [_parse_ts(e.get("ts")) for e in self._tail_events(folder)]
        valid = [t for t in times if t is not None]
        return max(valid) if valid else None

    def _last_seq(self, folder: Path) -> int:
        seqs = [e.get("seq") for e in self._tail_events(folder)]
        return max((s for s in seqs if isinstance(s, int)), default=0)

    def rebuild_index(self) -> int:
        """Recreate the index from the logs alone; returns the number of calls found."""
        db = self._writer_db
        with db.conn:
            for table in ("calls", "turns", "transcript", "costs"):
                db.execute(f"delete from {table}")
        count = 0
        for folder in sorted((self.root / "calls").glob("*/*")):
            events = list(read_events(folder / "events.jsonl"))
            if not events:
                continue
            count += 1
            rel = str(folder.relative_to(self.root))
            with db.conn:
                fields: dict[str, Any] = {}
                for event in events:
                    if getattr(event, "type", "") == "call.started":
                        fields = self._fields(event)
                    index.apply(db, event, rel, fields)
        return count

    rebuild = rebuild_index

    # --- retention -------------------------------------------------------------------

    def sweep_retention(self, today: date | None = None) -> int:
        """Delete day folders (and their index rows) older than the retention window."""
        if self.retention_days <= 0:
            return 0
        today = today or datetime.now(UTC).date()
        cutoff = today - timedelta(days=self.retention_days)
        removed = 0
        for day_dir in (self.root / "calls").iterdir():
            try:
                day = date.fromisoformat(day_dir.name)
            except ValueError:
                continue
            if day >= cutoff:
                continue
            ids = [p.name for p in day_dir.iterdir() if p.name not in self._open]
            with self._writer_db.conn:
                for call_id in ids:
                    for table in ("calls", "turns", "transcript", "costs"):
                        self._writer_db.execute(f"delete from {table} where call_id = ?", [call_id])
            shutil.rmtree(day_dir, ignore_errors=True)
            removed += 1
        return removed

    def _sweep(self) -> None:
        try:
            self.sweep_retention()
        except OSError:
            log.exception("retention sweep failed")

    # --- queries (event-loop thread, own connection) ------------------------------------

    def _query(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self._reader_db.execute(sql, params)
        return [index.row_dict(cur, row) for row in cur.fetchall()]

    def _where(
        self,
        direction: str | None,
        status: str | None,
        number: str | None,
        since: datetime | None,
        until: datetime | None,
        text: str | None = None,
    ) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if direction:
            clauses.append("direction = ?")
            params.append(direction)
        if status:
            clauses.append("status = ?")
            params.append(status)
        if number:
            clauses.append("(caller = ? or callee = ?)")
            params += [number, number]
        if since:
            clauses.append("started_at >= ?")
            params.append(since.isoformat())
        if until:
            clauses.append("started_at < ?")
            params.append(until.isoformat())
        if text:
            clauses.append(
                "(caller like ? or callee like ? or agent like ? or call_id in "
                "(select call_id from transcript where text like ?))"
            )
            params += [f"%{text}%"] * 4
        return (" where " + " and ".join(clauses)) if clauses else "", params

    def list_calls(
        self,
        limit: int = 50,
        offset: int = 0,
        *,
        direction: str | None = None,
        status: str | None = None,
        number: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
    ) -> list[dict[str, Any]]:
        where, params = self._where(direction, status, number, since, until, text)
        return self._query(
            f"select * from calls{where} order by started_at desc limit ? offset ?",
            [*params, max(0, min(limit, 1000)), max(0, offset)],
        )

    def count_calls(self, **filters: Any) -> int:
        where, params = self._where(
            filters.get("direction"),
            filters.get("status"),
            filters.get("number"),
            filters.get("since"),
            filters.get("until"),
            filters.get("text"),
        )
        return int(
            self._reader_db.execute(f"select count(*) from calls{where}", params).fetchone()[0]
        )

    def get_call(self, call_id: str) -> dict[str, Any] | None:
        rows = self._query("select * from calls where call_id = ?", [call_id])
        if not rows:
            return None
        call = rows[0]
        call["transcript"] = self._query(
            "select ts, role, text, interrupted, turn from transcript"
            " where call_id = ? order by seq",
            [call_id],
        )
        turns = self._query(
            "select turn, ts, latency, cost, total_cost from turns where call_id = ? order by turn",
            [call_id],
        )
        for turn in turns:
            turn["latency"] = index.loads(turn["latency"])
            turn["cost"] = index.loads(turn["cost"])
        call["turns_detail"] = turns
        costs = self._query("select * from costs where call_id = ?", [call_id])
        call["cost"] = costs[0] if costs else None
        return call

    def totals_by_day(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        where, params = self._where(None, None, None, since, until)
        return self._query(
            "select day, count(*) as calls,"
            " round(coalesce(sum(duration_s), 0) / 60.0, 3) as minutes,"
            f" round(coalesce(sum(cost_total), 0), 6) as cost from calls{where}"
            " group by day order by day",
            params,
        )


def read_events(path: Path) -> Iterator[BaseEvent]:
    """Events of one log; unparseable lines (torn writes, corruption) are logged and skipped."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield parse_event(raw)
            except (ValidationError, ValueError):
                log.warning("%s:%d: skipping unreadable event", path, n)


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
