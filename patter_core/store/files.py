"""The durable logs of one call: ``metadata.json``, ``transcript.jsonl``, ``events.jsonl``.

Files are 0600 and folders 0700 because transcripts are never redacted.
``metadata.json`` is rewritten atomically (temp file, fsync, rename), so a
crash leaves the old or the new version, never half of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TextIO

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)


def open_append(path: Path) -> TextIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    return os.fdopen(fd, "a", encoding="utf-8")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class CallFiles:
    """Open append handles for one live call; flushed by the writer, closed at call end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        make_dir(folder.parent)  # the day folder
        make_dir(folder)
        self.events = open_append(folder / "events.jsonl")
        self.transcript = open_append(folder / "transcript.jsonl")

    def flush(self, sync: bool = False) -> None:
        for fh in (self.events, self.transcript):
            fh.flush()
            if sync:
                os.fsync(fh.fileno())

    def close(self) -> None:
        self.flush(sync=True)
        self.events.close()
        self.transcript.close()
