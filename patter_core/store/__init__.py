"""Persistent call history: JSONL logs (the durable record) + a SQLite index.

Only this package touches SQL; everyone else goes through ``CallStore``.
"""

from patter_core.store.paths import resolve_root
from patter_core.store.redact import redact_phone
from patter_core.store.store import CallStore

__all__ = ["CallStore", "redact_phone", "resolve_root"]
