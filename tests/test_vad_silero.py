"""Silero VAD: real speech vs noise, per-call state on one shared model, barge-in end to end."""

from __future__ import annotations

import asyncio
import functools

import pytest

from patter_core.audio.formats import MULAW_8K
from patter_core.brain import CallerText
from patter_core.session.config import AgentConfig
from patter_core.session.silero import SileroDetector, SileroModel
from patter_core.session.vad import VadFrame
from tests.fakes.audio import mulaw, noise_burst, silence, tts_speech
from tests.fakes.scripted_brain import reply
from tests.session_harness import start_call

pytest.importorskip("onnxruntime")


@functools.cache
def _speech() -> bytes:
    return mulaw(tts_speech("Hello, could you tell me whether you are open on Sunday afternoon"))


async def _run(det: SileroDetector, wire: bytes) -> tuple[list[VadFrame], list[float]]:
    frames: list[VadFrame] = []
    probs: list[float] = []
    for i in range(0, len(wire), 160):
        frames += await det.afeed(wire[i : i + 160], i / 8)
        probs.append(det.last_prob)
    return frames, probs


def _voiced_share(frames: list[VadFrame]) -> float:
    return sum(f.speech for f in frames) / len(frames)


async def test_speech_detected_every_20ms_frame_decided() -> None:
    wire = _speech()
    frames, _ = await _run(SileroDetector(MULAW_8K), wire)
    # One decision per 20 ms frame, lagging by at most one 32 ms window.
    assert len(wire) // 160 - 2 <= len(frames) <= len(wire) // 160
    assert [f.t_ms for f in frames] == [20.0 * i for i in range(len(frames))]
    assert _voiced_share(frames) > 0.7


@pytest.mark.parametrize("pcm", [silence(2000), noise_burst(2000), noise_burst(300, seed=7)])
async def test_silence_and_noise_are_not_speech(pcm: bytes) -> None:
    frames, _ = await _run(SileroDetector(MULAW_8K), mulaw(pcm + silence(200)))
    assert frames
    assert not any(f.speech for f in frames)


async def test_state_isolated_across_calls_on_one_shared_session() -> None:
    model = SileroModel.shared()
    assert not model.inline  # the batched, threaded path
    assert SileroDetector(MULAW_8K)._model is model
    a_wire, b_wire = _speech(), mulaw(noise_burst(1500, seed=3) + silence(1500))
    alone_a = await _run(SileroDetector(MULAW_8K, model=model), a_wire)
    alone_b = await _run(SileroDetector(MULAW_8K, model=model), b_wire)

    # Interleaved chunk by chunk, and concurrently (so both share batched runs).
    da, db = SileroDetector(MULAW_8K, model=model), SileroDetector(MULAW_8K, model=model)
    got_a, got_b = await asyncio.gather(_run(da, a_wire), _run(db, b_wire))
    assert got_a[0] == alone_a[0]
    assert got_b[0] == alone_b[0]
    assert got_a[1] == pytest.approx(alone_a[1], abs=1e-4)
    assert got_b[1] == pytest.approx(alone_b[1], abs=1e-4)
    assert any(f.speech for f in got_a[0]) and not any(f.speech for f in got_b[0])


@pytest.fixture
def inline_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sessions get an inline model: the harness's settle() cannot see a worker thread."""
    monkeypatch.setattr(SileroModel, "_shared", SileroModel(inline=True))


@pytest.mark.usefixtures("inline_model")
async def test_barge_in_end_to_end_with_silero() -> None:
    call = await start_call(AgentConfig(vad="silero"))
    await call.brain.emit(*reply("r1", "Our opening hours are nine to five on weekdays", 4000))
    await call.leg.feed(mulaw(silence(1000)))
    assert call.leg.clears == []
    await call.leg.feed(_speech()[: 8 * 1200])
    assert len(call.leg.clears) == 1
    played_at_clear = call.leg.played_ms
    await call.brain.emit(CallerText("hello, could you tell me", final=False))
    assert len(call.brain.interrupts) == 1
    assert played_at_clear - 100 <= call.brain.interrupts[0] <= played_at_clear
    (barge,) = call.events("barge_in")
    assert not barge.resumed
    assert 250 <= barge.detect_to_clear_ms <= 450  # threshold 300 ms + one 32 ms window lag
    await call.end()


@pytest.mark.usefixtures("inline_model")
async def test_cough_while_agent_speaks_does_not_clear_with_silero() -> None:
    call = await start_call(AgentConfig(vad="silero"))
    await call.brain.emit(*reply("r1", "Our opening hours are nine to five on weekdays", 3000))
    await call.leg.feed(mulaw(silence(500) + noise_burst(400) + silence(500)))
    assert call.leg.clears == []
    assert call.events("barge_in") == []
    await call.end()


async def test_wideband_wire_runs_at_16k_with_carried_remainder() -> None:
    from patter_core.audio.formats import PCM16_16K

    wire = tts_speech("Hello, could you tell me whether you are open on Sunday", rate=16000)
    det = SileroDetector(PCM16_16K)
    frames: list[VadFrame] = []
    for i in range(0, len(wire), 640):  # 20 ms = 320 samples; windows take 512
        frames += await det.afeed(wire[i : i + 640], i / 32)
    assert len(wire) // 640 - 2 <= len(frames) <= len(wire) // 640
    assert _voiced_share(frames) > 0.7
    quiet, _ = await _run(SileroDetector(MULAW_8K), mulaw(silence(1000)))
    assert not any(f.speech for f in quiet)


def test_agent_selects_vad_and_rejects_unknown() -> None:
    from patter_core.agent import Agent
    from patter_core.pricing import Pricing
    from patter_core.session.vad import VoiceDetector, make_detector

    cfg = Agent(engine=object(), vad="silero").session_config(pricing=Pricing())
    assert cfg.vad == "silero"
    assert isinstance(make_detector(MULAW_8K, cfg), SileroDetector)
    default = Agent(engine=object()).session_config(pricing=Pricing())
    assert isinstance(make_detector(MULAW_8K, default), VoiceDetector)
    with pytest.raises(ValueError, match="vad must be"):
        Agent(engine=object(), vad="neural")  # type: ignore[arg-type]
