"""Cut streaming text into pieces TTS can start on: sentences, or clauses when long.

The first audio of a reply can go out as soon as its first sentence is
written, instead of after the whole reply.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "inc", "no"}
)
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:—]+(?=\s)")
CLAUSE_AFTER = 80  # characters: cut long sentences at a clause boundary


class Segmenter:
    def __init__(self, min_chars: int = 12) -> None:
        self.min_chars = min_chars
        self._buf = ""

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the pieces now complete."""
        self._buf += text
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                return out
            piece, self._buf = self._buf[:cut].strip(), self._buf[cut:].lstrip()
            if piece:
                out.append(piece)

    def _find_cut(self) -> int | None:
        for m in _SENTENCE_END.finditer(self._buf):
            end = m.end()
            if end < self.min_chars:
                continue
            word = (
                self._buf[: m.start()].rsplit(None, 1)[-1].lower()
                if self._buf[: m.start()].strip()
                else ""
            )
            if m.group().startswith(".") and word.rstrip(".") in _ABBREVIATIONS:
                continue
            return end
        if len(self._buf) > CLAUSE_AFTER:
            for m in _CLAUSE_END.finditer(self._buf):
                if m.end() >= self.min_chars:
                    return m.end()
        return None

    def flush(self) -> list[str]:
        rest, self._buf = self._buf.strip(), ""
        return [rest] if rest else []
