"""Guardrails: checks on agent text before the caller hears it.

A pipeline calls :func:`apply_guardrails` on each sentence before TTS. With a
speech-to-speech engine text and audio arrive together, so the session runs
the same function on the reply's text as it streams and, on a block, cuts
the audio, interrupts the engine and has it say the replacement instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DEFAULT_REPLACEMENT = "I'm sorry, I can't help with that."


@dataclass(frozen=True, slots=True)
class Guardrail:
    """Blocks a reply that contains any ``blocked_terms`` (whole words, any case) or
    for which ``check(text)`` returns True; the caller hears ``replacement`` instead."""

    name: str
    blocked_terms: Sequence[str] = ()
    check: Callable[[str], bool] | None = None
    replacement: str = DEFAULT_REPLACEMENT
    _pattern: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        terms = [t.strip() for t in self.blocked_terms if t.strip()]
        if terms:
            alts = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
            pattern = re.compile(rf"(?<!\w)(?:{alts})(?!\w)", re.IGNORECASE)
            object.__setattr__(self, "_pattern", pattern)

    def blocks(self, text: str) -> bool:
        if self._pattern is not None and self._pattern.search(text):
            return True
        if self.check is not None:
            try:
                return bool(self.check(text))
            except Exception:
                # A broken check must not silence the agent; it is logged, not obeyed.
                log.exception("guardrail %r check raised; treating text as allowed", self.name)
        return False


def guardrail(
    *,
    name: str,
    blocked_terms: Sequence[str] = (),
    check: Callable[[str], bool] | None = None,
    replacement: str = DEFAULT_REPLACEMENT,
) -> Guardrail:
    return Guardrail(name, tuple(blocked_terms), check, replacement)


def apply_guardrails(text: str, guardrails: Sequence[Guardrail]) -> tuple[str, Guardrail | None]:
    """``(text to speak, the guardrail that fired or None)``; the first match wins."""
    for g in guardrails:
        if g.blocks(text):
            return g.replacement, g
    return text, None
