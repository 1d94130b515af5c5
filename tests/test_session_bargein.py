"""Barge-in and the interruption policy, driven by real webrtcvad on generated audio."""

from __future__ import annotations

import pytest

from patter_core.brain import CallerText
from patter_core.session.config import AgentConfig
from patter_core.session.interruption import InterruptionPolicy
from tests.fakes.audio import mulaw, noise_burst, silence, voiced
from tests.fakes.scripted_brain import AGENT_SAMPLE, reply
from tests.session_harness import start_call

SENTENCE = (
    "Our opening hours are nine to five on weekdays and ten to two on Saturdays, "
    "and we are closed on public holidays"
)


async def _speaking_call(policy: InterruptionPolicy | None = None, ms: int = 3000):  # type: ignore[no-untyped-def]
    call = await start_call(AgentConfig(policy=policy or InterruptionPolicy()))
    await call.brain.emit(*reply("r1", SENTENCE, ms))
    assert call.leg.queued_ms == pytest.approx(ms)
    await call.leg.feed(mulaw(silence(1000)))
    return call


async def test_real_interruption_clears_cuts_and_interrupts() -> None:
    call = await _speaking_call()
    await call.leg.feed(mulaw(voiced(400)))
    assert len(call.leg.clears) == 1
    played_at_clear = call.leg.played_ms
    await call.brain.emit(CallerText("wait, what about Sunday", final=False))

    assert len(call.brain.interrupts) == 1
    heard = call.brain.interrupts[0]
    # Heard is what the marks confirmed: never more than was played, at most one mark short.
    assert played_at_clear - 100 <= heard <= played_at_clear
    assert 1200 <= heard <= 1400

    (barge,) = call.events("barge_in")
    assert barge.heard_ms == heard
    assert not barge.resumed
    assert 250 <= barge.detect_to_clear_ms <= 360  # virtual clock: ~threshold of speech

    agent_lines = [t for t in call.events("transcript") if t.role == "agent"]
    assert len(agent_lines) == 1
    cut = agent_lines[0]
    assert cut.interrupted
    assert SENTENCE.startswith(cut.text)
    words = len(cut.text.split())
    assert abs(words - len(SENTENCE.split()) * heard / 3000) <= 1.5

    # Nothing more of the reply reaches the caller after the clear.
    await call.brain.emit(*reply("r1", SENTENCE, 400)[1:])
    await call.leg.feed(mulaw(silence(500)))
    assert call.leg.played_ms == played_at_clear
    summary = await call.end()
    assert summary["reason"] == "hangup"


async def test_uh_huh_mid_sentence_resumes_from_cut() -> None:
    call = await _speaking_call()
    await call.leg.feed(mulaw(voiced(400)))
    assert len(call.leg.clears) == 1
    await call.leg.feed(mulaw(silence(100)))
    await call.brain.emit(CallerText("uh-huh", final=True))
    assert call.brain.interrupts == []
    (barge,) = call.events("barge_in")
    assert barge.resumed
    await call.leg.feed(mulaw(silence(2500)))
    # The caller heard the whole reply exactly once: no gap, no repeat.
    assert bytes(call.leg.played) == AGENT_SAMPLE * 24000
    assert not call.session.ledger.speaking
    await call.end()


async def test_uh_huh_without_pause_never_clears() -> None:
    call = await _speaking_call(InterruptionPolicy(pause_before_words=False))
    await call.leg.feed(mulaw(voiced(400) + silence(100)))
    await call.brain.emit(CallerText("mm-hmm.", final=True))
    assert call.leg.clears == []
    assert call.brain.interrupts == []
    assert call.events("barge_in")[0].resumed
    await call.end()


async def test_cough_is_ignored_or_resumed() -> None:
    call = await _speaking_call()
    await call.leg.feed(mulaw(noise_burst(150) + silence(200)))
    assert call.leg.clears == []  # too short to pause the agent

    await call.leg.feed(mulaw(noise_burst(400, seed=7)))
    assert len(call.leg.clears) == 1  # long enough to pause
    await call.leg.feed(mulaw(silence(1600)))  # no words within the window
    assert call.brain.interrupts == []
    (barge,) = call.events("barge_in")
    assert barge.resumed
    await call.leg.feed(mulaw(silence(1500)))
    assert bytes(call.leg.played) == AGENT_SAMPLE * 24000
    await call.end()


async def test_slow_speaker_reading_digits_interrupts() -> None:
    call = await _speaking_call(InterruptionPolicy(min_words=3), ms=5000)
    await call.leg.feed(mulaw(voiced(200, seed=1) + silence(350)))
    await call.brain.emit(CallerText("four", final=False))
    assert call.leg.clears == []  # one short digit: not yet sustained
    await call.leg.feed(mulaw(voiced(200, seed=2)))
    assert len(call.leg.clears) == 1  # voiced time adds up across the pause
    await call.leg.feed(mulaw(silence(350)))
    await call.brain.emit(CallerText("four one", final=False))
    assert call.brain.interrupts == []  # two words < min_words=3: still judging
    await call.leg.feed(mulaw(voiced(200, seed=3)))
    await call.brain.emit(CallerText("four one five", final=False))
    assert len(call.brain.interrupts) == 1
    await call.brain.emit(CallerText("four one five", final=True))
    caller = [t for t in call.events("transcript") if t.role == "caller" and t.final]
    assert [t.text for t in caller] == ["four one five"]
    await call.end()


async def test_classic_policy_interrupts_without_words() -> None:
    call = await _speaking_call(InterruptionPolicy(resume=False))
    await call.leg.feed(mulaw(voiced(400)))
    assert len(call.brain.interrupts) == 1
    assert call.events("barge_in")[0].heard_ms == call.brain.interrupts[0]
    await call.end()


async def test_speech_while_agent_silent_is_not_barge_in() -> None:
    call = await start_call()
    await call.leg.feed(mulaw(voiced(600) + silence(600)))
    assert call.leg.clears == []
    assert call.events("barge_in") == []
    assert len(call.brain.audio_in) == 8000 * 1200 // 1000  # µ-law passes through untouched
    await call.end()
