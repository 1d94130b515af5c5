"""Where call history lives: ``persist=`` and ``PATTER_LOG_DIR`` resolved to a folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def default_root() -> Path:
    """``~/.local/share/patter``, ``~/Library/Application Support/patter`` or
    ``%LOCALAPPDATA%\\patter``: no app-author folder on Windows, as documented."""
    return Path(platformdirs.user_data_dir("patter", appauthor=False))


def resolve_root(persist: bool | str | os.PathLike[str] | None = None) -> Path | None:
    """``None``: ``PATTER_LOG_DIR`` if set (``auto`` = default), else the default.
    ``False``: off. ``True``: the default. A path: that path, ``~`` expanded."""
    if persist is False:
        return None
    if persist is True:
        return default_root()
    if persist is None:
        env = os.environ.get("PATTER_LOG_DIR", "").strip()
        if not env or env.lower() == "auto":
            return default_root()
        return Path(env).expanduser()
    return Path(persist).expanduser()
