from __future__ import annotations

import numpy as np
import pytest

from patter_core.audio.formats import L16_16K, MULAW_8K, PCM16_8K, PCM16_24K
from patter_core.session.interruption import InterruptionPolicy, Verdict, judge
from patter_core.session.ledger import PlaybackLedger, cut_text
from patter_core.session.vad import (
    SpeechEnded,
    SpeechStarted,
    SpeechSustained,
    SpeechTracker,
    VoiceDetector,
    to_pcm16,
)
from tests.fakes.audio import mulaw, noise_burst, silence, voiced


def test_ledger_counts_only_acknowledged_audio() -> None:
    ledger = PlaybackLedger(MULAW_8K, clock=lambda: 1.0)
    m1 = ledger.record_sent("r1", bytes(800))  # 100 ms
    m2 = ledger.record_sent("r1", bytes(800))
    assert ledger.speaking
    assert ledger.heard_ms("r1") == 0
    ledger.ack(m1)
    assert ledger.heard_ms("r1") == pytest.approx(100)
    assert ledger.response("r1").first_heard_at == 1.0
    ledger.ack(m2)
    assert ledger.heard_ms("r1") == pytest.approx(200)
    assert not ledger.speaking


def test_ledger_ack_implies_earlier_chunks_played() -> None:
    ledger = PlaybackLedger(MULAW_8K)
    ledger.record_sent("r1", bytes(800))
    m2 = ledger.record_sent("r1", bytes(800))
    ledger.ack(m2)
    assert ledger.heard_ms("r1") == pytest.approx(200)


def test_ledger_ignores_marks_echoed_after_clear() -> None:
    ledger = PlaybackLedger(MULAW_8K)
    m1 = ledger.record_sent("r1", bytes(800))
    m2 = ledger.record_sent("r1", b"\x01" * 800)
    ledger.ack(m1)
    dropped = ledger.clear()
    assert dropped == {"r1": [b"\x01" * 800]}
    assert not ledger.speaking
    assert ledger.ack(m2) is None  # the carrier echoes pending marks on clear
    assert ledger.heard_ms("r1") == pytest.approx(100)
    assert ledger.ack("unknown-mark") is None


def test_ledger_replay_continues_from_heard_point() -> None:
    ledger = PlaybackLedger(MULAW_8K)
    m1 = ledger.record_sent("r1", bytes(800))
    ledger.record_sent("r1", bytes(800))
    ledger.ack(m1)
    for payloads in ledger.clear().values():
        for p in payloads:
            m = ledger.record_sent("r1", p)
    ledger.ack(m)
    assert ledger.heard_ms("r1") == pytest.approx(200)


def test_ledger_gathers_small_pieces_into_one_marked_chunk() -> None:
    ledger = PlaybackLedger(MULAW_8K)
    frame = bytes(160)  # 20 ms
    marks = [ledger.record_sent("r1", frame, min_ms=100) for _ in range(12)]
    assert marks[:4] == [None] * 4 and marks[4] is not None  # one mark per 100 ms
    assert [m is not None for m in marks].count(True) == 2
    assert ledger.speaking and ledger.open_response == "r1"
    assert ledger.outstanding_ms == pytest.approx(240)
    ledger.ack(marks[4])
    assert ledger.heard_ms("r1") == pytest.approx(100)
    ledger.ack(marks[9])
    assert ledger.heard_ms("r1") == pytest.approx(200)
    assert ledger.speaking, "40 ms sent and not yet marked"
    last = ledger.seal()
    assert last is not None and ledger.seal() is None
    ledger.ack(last)
    assert ledger.heard_ms("r1") == pytest.approx(240) and not ledger.speaking


def test_ledger_clear_returns_unmarked_audio_for_replay() -> None:
    ledger = PlaybackLedger(MULAW_8K)
    first = [ledger.record_sent("r1", bytes([i]) * 160, min_ms=100) for i in range(5)]
    ledger.record_sent("r1", b"\x07" * 160, min_ms=100)  # open, no mark yet
    assert ledger.current_response() == "r1"
    dropped = ledger.clear()
    assert dropped == {"r1": [bytes([i]) * 160 for i in range(5)] + [b"\x07" * 160]}
    assert not ledger.speaking and ledger.open_response is None
    assert ledger.ack(first[4]) is None  # echoed after the clear: ignored


def test_ledger_refuses_another_reply_into_an_open_chunk() -> None:
    ledger = PlaybackLedger(MULAW_8K)
    ledger.record_sent("r1", bytes(160), min_ms=100)
    with pytest.raises(RuntimeError):
        ledger.record_sent("r2", bytes(160), min_ms=100)
    mark = ledger.seal()
    assert ledger.record_sent("r2", bytes(800), min_ms=100) is not None
    ledger.ack(mark)
    assert ledger.heard_ms("r1") == pytest.approx(20) and ledger.heard_ms("r2") == 0


def test_cut_text_by_share_of_audio_heard() -> None:
    text = "Our opening hours are nine to five on weekdays"
    assert cut_text(text, 0, 1000) == ""
    assert cut_text(text, 1000, 1000) == text
    half = cut_text(text, 500, 1000)
    assert text.startswith(half)
    assert half.split() == ["Our", "opening", "hours", "are"]


def test_decode_tables_match_reference_values() -> None:
    # G.711 µ-law: 0xFF and 0x7F are zero, 0x00 is the most negative, 0x80 the most positive.
    pcm = to_pcm16(bytes([0xFF, 0x7F, 0x00, 0x80]), MULAW_8K)
    assert list(pcm) == [0, 0, -32124, 32124]
    be = to_pcm16(b"\x01\x00\xff\xfe", L16_16K)
    assert list(be) == [256, -2]


def test_vad_rejects_unsupported_rate() -> None:
    with pytest.raises(ValueError, match="24000"):
        VoiceDetector(PCM16_24K)


def _frames(detector: VoiceDetector, pcm: bytes, fmt_mulaw: bool = True) -> list[bool]:
    data = mulaw(pcm) if fmt_mulaw else pcm
    out: list[bool] = []
    step = 160 if fmt_mulaw else 320
    for i in range(0, len(data), step):
        out.extend(f.speech for f in detector.feed(data[i : i + step]))
    return out


def test_webrtcvad_hears_voiced_audio_not_silence() -> None:
    det = VoiceDetector(MULAW_8K)
    quiet = _frames(det, silence(500))
    speech = _frames(det, voiced(600))
    assert not any(quiet)
    assert sum(speech) >= 0.9 * len(speech)


def test_vad_on_pcm16_frames_in_odd_chunk_sizes() -> None:
    det = VoiceDetector(PCM16_8K)
    pcm = silence(200) + voiced(400)
    frames = []
    for i in range(0, len(pcm), 250):  # not a multiple of a frame
        frames.extend(det.feed(pcm[i : i + 250]))
    assert len(frames) == 30
    assert [f.t_ms for f in frames[:3]] == [0, 20, 40]
    assert not any(f.speech for f in frames[:10])
    assert sum(f.speech for f in frames[10:]) >= 18


def test_tracker_segments_sustained_and_end() -> None:
    det = VoiceDetector(MULAW_8K)
    tracker = SpeechTracker(threshold_ms=300, hangover_ms=300)
    events = []
    for f in det.feed(mulaw(silence(200) + voiced(500) + silence(600))):
        events.extend(tracker.update(f))
    kinds = [type(e) for e in events]
    assert kinds == [SpeechStarted, SpeechSustained, SpeechEnded]
    assert events[0].t_ms == pytest.approx(200, abs=40)
    assert isinstance(events[1], SpeechSustained)
    assert events[1].t_ms - events[1].onset_ms >= 300
    assert isinstance(events[2], SpeechEnded)
    assert events[2].t_ms == pytest.approx(700, abs=60)


def test_short_cough_is_not_sustained() -> None:
    det = VoiceDetector(MULAW_8K)
    tracker = SpeechTracker(threshold_ms=300)
    events = []
    for f in det.feed(mulaw(noise_burst(150) + silence(800))):
        events.extend(tracker.update(f))
    assert not any(isinstance(e, SpeechSustained) for e in events)
    assert any(isinstance(e, SpeechStarted) for e in events)


def test_slow_digits_add_up_within_one_segment() -> None:
    det = VoiceDetector(MULAW_8K)
    tracker = SpeechTracker(threshold_ms=300, hangover_ms=500)
    pcm = b"".join(voiced(200, seed=i) + silence(350) for i in range(3))
    events = []
    for f in det.feed(mulaw(pcm)):
        events.extend(tracker.update(f))
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1
    assert sum(isinstance(e, SpeechSustained) for e in events) == 1


def test_policy_verdicts() -> None:
    p = InterruptionPolicy()
    kw = {"elapsed_ms": 100.0, "still_speaking": False, "words_available": True}
    assert judge(p, caller_text="wait, stop", text_final=False, **kw) is Verdict.CONFIRM
    assert judge(p, caller_text="uh-huh", text_final=True, **kw) is Verdict.RESUME
    assert judge(p, caller_text="Yeah.", text_final=False, **kw) is Verdict.WAIT
    assert judge(p, caller_text="", text_final=False, **kw) is Verdict.WAIT
    late = {**kw, "elapsed_ms": 2000.0}
    assert judge(p, caller_text="", text_final=False, **late) is Verdict.RESUME
    assert (
        judge(
            p,
            caller_text="",
            text_final=False,
            elapsed_ms=2000,
            still_speaking=True,
            words_available=False,
        )
        is Verdict.CONFIRM
    )
    strict = InterruptionPolicy(min_words=3)
    assert judge(strict, caller_text="no wait", text_final=False, **kw) is Verdict.WAIT
    assert judge(strict, caller_text="no wait please", text_final=False, **kw) is Verdict.CONFIRM
    custom = InterruptionPolicy(is_backchannel=lambda t: "sí" in t)
    assert judge(custom, caller_text="sí", text_final=True, **kw) is Verdict.RESUME
    classic = InterruptionPolicy(resume=False)
    assert judge(classic, caller_text="", text_final=False, **kw) is Verdict.CONFIRM


def test_vad_one_second_is_fifty_frames() -> None:
    det = VoiceDetector(MULAW_8K)
    frames = det.feed(mulaw(voiced(1000)))
    assert len(frames) == 50
    assert np.mean([f.speech for f in frames]) > 0.9
