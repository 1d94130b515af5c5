"""The SQLite index over the logs: what the daemon, TUI and dashboard query.

Schema changes are versioned migrations (``sqlite-migrate`` on top of
sqlite-utils), applied in order at open. The index is derived data: every
row can be rebuilt by replaying ``events.jsonl`` through ``apply``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_migrate import Migrations
from sqlite_utils import Database

from patter_core.events import BaseEvent

migrations = Migrations("patter.store")


@migrations()
def m001_calls(db: Database) -> None:
    db["calls"].create(  # type: ignore[union-attr]
        {
            "call_id": str,
            "direction": str,
            "caller": str,
            "callee": str,
            "carrier": str,
            "agent": str,
            "status": str,
            "reason": str,
            "started_at": str,
            "ended_at": str,
            "duration_s": float,
            "turns": int,
            "cost_total": float,
            "day": str,
            "folder": str,
        },
        pk="call_id",
    )
    db["calls"].create_index(["started_at"])  # type: ignore[union-attr]
    db["calls"].create_index(["status"])  # type: ignore[union-attr]
    db["turns"].create(  # type: ignore[union-attr]
        {"call_id": str, "turn": int, "ts": str, "latency": str, "cost": str, "total_cost": float},
        pk=("call_id", "turn"),
    )
    db["transcript"].create(  # type: ignore[union-attr]
        {
            "call_id": str,
            "seq": int,
            "ts": str,
            "role": str,
            "text": str,
            "interrupted": int,
            "turn": int,
        },
        pk=("call_id", "seq"),
    )


@migrations()
def m002_costs(db: Database) -> None:
    db["costs"].create(  # type: ignore[union-attr]
        {
            "call_id": str,
            "carrier": float,
            "stt": float,
            "llm": float,
            "tts": float,
            "realtime": float,
            "total": float,
        },
        pk="call_id",
    )


def connect(path: Path) -> Database:
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    db = Database(conn)
    migrations.apply(db)
    return db


def _iso(ts: datetime) -> str:
    return ts.isoformat()


def apply(db: Database, event: BaseEvent, folder: str, fields: dict[str, Any]) -> None:
    """Fold one event into the index. ``fields`` are call.started's (already redacted)."""
    kind = getattr(event, "type", "")
    calls = db["calls"]
    if kind == "call.started":
        calls.upsert(  # type: ignore[union-attr]
            {
                "call_id": event.call_id,
                **fields,
                "status": "live",
                "reason": "",
                "started_at": _iso(event.ts),
                "day": event.ts.date().isoformat(),
                "folder": folder,
                "turns": 0,
                "cost_total": 0.0,
            },
            pk="call_id",
        )
    elif kind == "call.answered":
        pass
    elif kind == "transcript":
        if getattr(event, "final", True):
            db["transcript"].upsert(  # type: ignore[union-attr]
                {
                    "call_id": event.call_id,
                    "seq": event.seq,
                    "ts": _iso(event.ts),
                    "role": event.role,  # type: ignore[attr-defined]
                    "text": event.text,  # type: ignore[attr-defined]
                    "interrupted": int(event.interrupted),  # type: ignore[attr-defined]
                    "turn": event.turn,  # type: ignore[attr-defined]
                },
                pk=("call_id", "seq"),
            )
    elif kind == "turn.metrics":
        db["turns"].upsert(  # type: ignore[union-attr]
            {
                "call_id": event.call_id,
                "turn": event.turn,  # type: ignore[attr-defined]
                "ts": _iso(event.ts),
                "latency": event.latency.model_dump_json(),  # type: ignore[attr-defined]
                "cost": event.cost.model_dump_json(),  # type: ignore[attr-defined]
                "total_cost": event.total_cost,  # type: ignore[attr-defined]
            },
            pk=("call_id", "turn"),
        )
    elif kind == "call.ended":
        cost = getattr(event, "cost", None)
        total = cost.total if cost is not None else 0.0
        _ensure_row(db, event, folder)
        calls.update(  # type: ignore[union-attr]
            event.call_id,
            {
                "status": event.status,  # type: ignore[attr-defined]
                "reason": event.reason,  # type: ignore[attr-defined]
                "ended_at": _iso(event.ts),
                "duration_s": event.duration_s,  # type: ignore[attr-defined]
                "turns": getattr(event, "turns", 0),
                "cost_total": total,
            },
        )
        if cost is not None:
            db["costs"].upsert(  # type: ignore[union-attr]
                {
                    "call_id": event.call_id,
                    "carrier": cost.carrier,
                    "stt": cost.stt,
                    "llm": cost.llm,
                    "tts": cost.tts,
                    "realtime": cost.realtime,
                    "total": total,
                },
                pk="call_id",
            )


def _ensure_row(db: Database, event: BaseEvent, folder: str) -> None:
    """A call whose start we never saw (e.g. a rebuild from a truncated log) still gets a row."""
    row = db.execute("select 1 from calls where call_id = ?", [event.call_id]).fetchone()
    if row is None:
        db["calls"].insert(  # type: ignore[union-attr]
            {
                "call_id": event.call_id,
                "direction": "",
                "status": "live",
                "started_at": _iso(event.ts),
                "day": event.ts.date().isoformat(),
                "folder": folder,
            },
            pk="call_id",
        )


def row_dict(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def loads(text: str | None) -> Any:
    return json.loads(text) if text else None
