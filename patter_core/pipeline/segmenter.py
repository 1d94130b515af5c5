"""Cut streamed LLM text into pieces a TTS can speak with natural prosody.

A piece ends at a sentence end (``. ! ? …`` followed by a space) or, once the
piece is long, at a clause break (``, ; : —``). Not a sentence end: a period
after a title ("Dr. Smith"), after an abbreviation unless a capital follows
("e.g. this"), after a single initial ("J."), inside a number ("3.5",
"1,000"), or an ellipsis followed by a lowercase word. Pieces shorter than
``min_chars`` are held and joined to the next, so "Sure." does not become its
own TTS request."""

from __future__ import annotations

ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "ave", "rd", "blvd",
        "vs", "etc", "e.g", "i.e", "a.m", "p.m", "u.s", "u.k", "no", "inc", "ltd",
        "co", "corp", "dept", "approx", "appt", "est", "min", "max", "fig", "jan",
        "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip

TITLES = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "no", "vs"})
"""Abbreviations that always lead into a name or number, so never end a sentence."""

_SENTENCE_END = ".!?…"
_CLAUSE_END = ",;:—"
_CLOSERS = "\"')]}”’»"


class SentenceSegmenter:
    def __init__(self, *, min_chars: int = 8, clause_chars: int = 60) -> None:
        self.min_chars = min_chars
        self.clause_chars = clause_chars
        self._buf = ""
        self._scan = 0

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the pieces it completed."""
        self._buf += text
        pieces: list[str] = []
        while (cut := self._next_cut()) is not None:
            piece = self._buf[:cut].strip()
            self._buf = self._buf[cut:].lstrip()
            self._scan = 0
            if piece:
                pieces.append(piece)
        return pieces

    def flush(self) -> str:
        """End of the text: whatever is left, as one piece (may be empty)."""
        rest = self._buf.strip()
        self._buf = ""
        self._scan = 0
        return rest

    def _next_cut(self) -> int | None:
        buf = self._buf
        i = self._scan
        while i < len(buf):
            ch = buf[i]
            if ch in _SENTENCE_END or ch in _CLAUSE_END:
                end = i + 1
                while end < len(buf) and (buf[end] in _CLOSERS or buf[end] in _SENTENCE_END):
                    end += 1
                if end >= len(buf):
                    break  # need the next character to decide
                if not buf[end].isspace():
                    i = end
                    continue
                verdict = self._is_boundary(buf, i, end)
                if verdict is None:
                    break
                if verdict and len(buf[:end].strip()) >= self._min_for(ch):
                    return end
                i = end
                continue
            i += 1
        self._scan = i
        return None

    def _min_for(self, ch: str) -> int:
        return self.min_chars if ch in _SENTENCE_END else max(self.min_chars, self.clause_chars)

    def _is_boundary(self, buf: str, i: int, end: int) -> bool | None:
        """``None``: undecidable until more text arrives."""
        ch = buf[i]
        if ch in _CLAUSE_END or ch in "!?":
            return True
        dots = buf[i:end].rstrip(_CLOSERS)
        if dots.startswith("…") or dots.count(".") >= 3 or "…" in dots:
            nxt = _next_word_start(buf, end)
            if nxt is None:
                return None
            return not buf[nxt].islower()
        word = _word_before(buf, i)
        if word.lower() in TITLES:
            return False
        if word.lower() in ABBREVIATIONS:
            # "at 5 p.m. Anything else?" ends; "e.g. tomorrow" does not.
            nxt = _next_word_start(buf, end)
            return None if nxt is None else buf[nxt].isupper()
        if len(word) == 1 and word.isalpha() and word.isupper():
            return False  # an initial: "J. R. Smith"
        if word.isdigit():
            # "Step 3. then" continues; "I have 3. Then" ends.
            nxt = _next_word_start(buf, end)
            return None if nxt is None else not buf[nxt].islower()
        return True


def _word_before(buf: str, i: int) -> str:
    j = i
    while j > 0 and (buf[j - 1].isalnum() or buf[j - 1] == "."):
        j -= 1
    return buf[j:i]


def _next_word_start(buf: str, pos: int) -> int | None:
    while pos < len(buf) and buf[pos].isspace():
        pos += 1
    return pos if pos < len(buf) else None
