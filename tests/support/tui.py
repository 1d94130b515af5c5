"""Helpers for driving patter-tui with Textual's Pilot."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import DataTable


async def wait_for(pilot: Pilot[None], check: Callable[[], bool], what: str) -> None:
    """Let the app run until ``check()`` holds; fails after 20 s naming ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20.0
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def column(table: DataTable[str], key: str) -> list[str]:
    return [str(table.get_cell(row, key)) for row in table.rows]


def row_keys(table: DataTable[str]) -> list[str]:
    return [str(k.value) for k in table.rows]
