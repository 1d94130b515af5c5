"""The live transcript: who said what, tool calls, DTMF, AMD and per-turn figures, as text.

Every line starts with a word (caller, agent, tool…) so speakers stay distinct
without colour (NO_COLOR); colour only adds to it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from patter_tui.state import Line

LABELS = {
    "caller": "caller",
    "agent": " agent",
    "tool": "  tool",
    "result": "  tool",
    "dtmf": "  dtmf",
    "amd": "   amd",
    "turn": "     ·",
    "barge": "     ·",
    "note": "     ·",
    "error": " error",
}
STYLES = {
    "caller": "bold cyan",
    "agent": "bold green",
    "tool": "magenta",
    "result": "magenta",
    "dtmf": "yellow",
    "amd": "yellow",
    "turn": "dim",
    "barge": "dim",
    "note": "dim",
    "error": "bold red",
}


def render_line(line: Line) -> Text:
    text = Text()
    text.append(LABELS[line.kind], style=STYLES[line.kind])
    text.append("  ")
    body_style = "dim" if line.kind in ("turn", "barge", "note") else ""
    text.append(line.text, style=body_style)
    if line.cut:
        text.append(" ✂ cut", style="bold red")
    return text


class TranscriptView(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, auto_scroll=True, id=id)
        self.plain: list[str] = []
        """The lines as plain text, in order (what a screen reader or a test reads)."""

    def add(self, lines: Iterable[Line]) -> None:
        for line in lines:
            rendered = render_line(line)
            self.plain.append(rendered.plain)
            self.write(rendered)
