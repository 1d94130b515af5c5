"""Per-agent rules for when caller speech really interrupts the agent.

Voice activity alone cannot tell "uh-huh" or a cough from "wait, stop", and
words arrive only after the speech has started. So a barge-in happens in two
steps: sustained speech *pauses* the agent (carrier playback cleared, new
agent audio held back, the brain left running), then words *confirm* it (the
brain is interrupted and its memory cut to what was heard) or their absence
*resumes* it (the cleared and held audio is replayed from the cut point).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_BACKCHANNELS: frozenset[str] = frozenset(
    {
        "uh-huh",
        "uh huh",
        "mm-hmm",
        "mm hmm",
        "mhm",
        "hmm",
        "mm",
        "yeah",
        "yes",
        "yep",
        "ok",
        "okay",
        "right",
        "sure",
        "got it",
        "i see",
        "alright",
    }
)

_NORMALIZE = re.compile(r"[^\w\s'-]+")


def normalize(text: str) -> str:
    return " ".join(_NORMALIZE.sub(" ", text.lower()).split())


@dataclass(frozen=True, slots=True)
class InterruptionPolicy:
    """``min_speech_ms``: voiced time before the agent pauses (``barge_in_threshold_ms``).

    ``min_words``: words needed to confirm, where the brain gives interim
    caller text. ``backchannels`` / ``is_backchannel``: utterances that never
    interrupt. ``false_interruption_ms``: how long after the pause the session
    waits for words before resuming. ``resume``: replay from the cut on a false
    interruption; when off, every pause is confirmed at once (classic barge-in).
    ``pause_before_words``: clear the carrier at once (agent stops fast); when
    off the agent keeps talking until words confirm (backchannels never cause a gap).
    ``enabled``: off for brains that must never be interrupted (the echo line test).
    """

    min_speech_ms: int = 300
    min_words: int = 1
    backchannels: frozenset[str] = DEFAULT_BACKCHANNELS
    is_backchannel: Callable[[str], bool] | None = None
    false_interruption_ms: int = 1500
    resume: bool = True
    pause_before_words: bool = True
    enabled: bool = True

    def backchannel(self, text: str) -> bool:
        """True when ``text`` is only acknowledgement, not a bid for the turn."""
        if self.is_backchannel is not None:
            return self.is_backchannel(text)
        norm = normalize(text)
        if not norm:
            return True
        if norm in self.backchannels:
            return True
        # "yeah yeah", "okay okay": repetitions of one backchannel.
        words = norm.split()
        return all(w in self.backchannels for w in words) and len(words) <= 3


class Verdict(StrEnum):
    WAIT = "wait"
    CONFIRM = "confirm"
    RESUME = "resume"


def judge(
    policy: InterruptionPolicy,
    *,
    caller_text: str,
    text_final: bool,
    elapsed_ms: float,
    still_speaking: bool,
    words_available: bool,
) -> Verdict:
    """Decide a paused barge-in from what is known so far.

    ``words_available``: the brain reports caller text at all; a brain that
    never does can only be judged by whether the caller keeps talking.
    """
    if not policy.resume:
        return Verdict.CONFIRM
    words = normalize(caller_text).split()
    if words and not policy.backchannel(caller_text) and len(words) >= max(1, policy.min_words):
        return Verdict.CONFIRM
    if words and text_final and policy.backchannel(caller_text) and not still_speaking:
        return Verdict.RESUME
    if elapsed_ms < policy.false_interruption_ms:
        return Verdict.WAIT
    if still_speaking and (not words_available or policy.min_words == 0):
        return Verdict.CONFIRM
    if still_speaking:
        return Verdict.WAIT
    return Verdict.RESUME
