"""webrtcvad vs Silero side by side: CPU for 200 calls, memory, accuracy on speech and noise.

CPU is process CPU time (``time.process_time``, which includes Silero's worker
thread), best of ``REPEATS`` runs, because the build machine is shared.
Speech is LocalTTS (eSpeak NG) at 8 kHz µ-law, clean and mixed with white
noise; ground truth per 20 ms frame is the clean speech's energy. Noise is
white noise, hum, and cough-like bursts (decaying broadband noise, 150-400 ms).
Run: ``python -m bench.vad``
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from patter_core.audio.formats import MULAW_8K
from patter_core.session.silero import SileroDetector, SileroModel
from patter_core.session.vad import (
    CallerVad,
    SpeechSustained,
    SpeechTracker,
    VadFrame,
    VoiceDetector,
)
from tests.fakes.audio import mulaw, tts_speech

CALLS = 200
SECONDS = 3
REPEATS = 3
RATE = 8000
SENTENCES = (
    "Hello, could you tell me whether you are open on Sunday afternoon",
    "My account number is four seven two nine, and I would like to change my address",
    "No, wait, that is not what I meant at all",
    "Yes please, book me in for Tuesday at half past ten",
)

Pcm = npt.NDArray[np.float64]
Floats = npt.NDArray[np.float32]
Factory = Callable[[], CallerVad]


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


class _Null:
    """Measures the harness (gather of 200 coroutines per tick), subtracted from each row."""

    async def afeed(self, payload: bytes, timestamp_ms: float | None = None) -> list[VadFrame]:
        return []


def _factories() -> dict[str, Factory]:
    model = SileroModel.shared()
    inline = SileroModel(inline=True)
    return {
        "webrtc": lambda: VoiceDetector(MULAW_8K),
        "silero (batched, worker thread)": lambda: SileroDetector(MULAW_8K, model=model),
        "silero (inline, batch 1)": lambda: SileroDetector(MULAW_8K, model=inline),
    }


async def _cpu(factory: Factory, wire: bytes) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        calls = [factory() for _ in range(CALLS)]
        start = time.process_time()
        for off in range(0, len(wire), 160):
            chunk = wire[off : off + 160]
            await asyncio.gather(*(c.afeed(chunk) for c in calls))
        best = min(best, time.process_time() - start)
    return best


async def _staggered(factory: Factory, wire: bytes) -> tuple[float, float]:
    """Real time: each call sends its 20 ms frames at its own random phase, as calls do."""
    rng = np.random.default_rng(1)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05
    sizes: list[int] = []

    async def call(phase: float) -> None:
        det = factory()
        for k, off in enumerate(range(0, len(wire), 160)):
            delay = t0 + phase + k * 0.02 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await det.afeed(wire[off : off + 160])

    model = SileroModel.shared()
    orig = model.infer

    def counting(windows: Floats, state: Floats, rate: int) -> tuple[Floats, Floats]:
        sizes.append(len(windows))
        return orig(windows, state, rate)

    model.infer = counting  # type: ignore[method-assign]
    start = time.process_time()
    await asyncio.gather(*(call(float(rng.uniform(0, 0.02))) for _ in range(CALLS)))
    cpu = time.process_time() - start
    del model.infer
    return cpu, (float(np.mean(sizes)) if sizes else 0.0)


def _memory() -> None:
    gc.collect()
    before = _rss_kb()
    SileroModel()
    print(f"shared Silero InferenceSession: {(_rss_kb() - before) / 1024:.1f} MB RSS")
    for name, factory in (
        ("webrtc", lambda: VoiceDetector(MULAW_8K)),
        ("silero", lambda: SileroDetector(MULAW_8K, model=SileroModel.shared())),
    ):
        gc.collect()
        before = _rss_kb()
        keep = [factory() for _ in range(2000)]
        per = (_rss_kb() - before) * 1024 / len(keep)
        print(f"{name}: ~{per / 1024:.1f} KB per call (RSS over 2000 detectors)")


def _noise(kind: str, n: int, rng: np.random.Generator) -> Pcm:
    if kind == "white":
        return rng.standard_normal(n) * 1500
    if kind == "hum":
        t = np.arange(n) / RATE
        return (np.sin(2 * np.pi * 60 * t) + 0.5 * np.sin(2 * np.pi * 180 * t)) * 3000
    # Coughs: decaying broadband bursts with gaps.
    out = np.zeros(n)
    pos = int(0.2 * RATE)
    while pos < n - RATE // 2:
        length = int(rng.uniform(0.15, 0.4) * RATE)
        env = np.exp(-np.arange(length) / (length / 4))
        out[pos : pos + length] = rng.standard_normal(length) * 9000 * env
        pos += length + int(rng.uniform(0.5, 1.0) * RATE)
    return out


def _enc(pcm: Pcm) -> bytes:
    return mulaw(np.clip(pcm, -32000, 32000).astype("<i2").tobytes())


async def _decide(factory: Factory, wire: bytes) -> tuple[list[bool], int]:
    det, tracker = factory(), SpeechTracker(threshold_ms=300)
    frames: list[bool] = []
    sustained = 0
    for off in range(0, len(wire), 160):
        for f in await det.afeed(wire[off : off + 160], off / 8):
            frames.append(f.speech)
            sustained += sum(isinstance(e, SpeechSustained) for e in tracker.update(f))
    return frames, sustained


async def _accuracy(factories: dict[str, Factory]) -> None:
    rng = np.random.default_rng(0)
    speech = [np.frombuffer(tts_speech(s), dtype="<i2").astype(np.float64) for s in SENTENCES]
    print("\naccuracy: hit = voiced share of speech frames; FA = voiced share of noise frames;")
    print("false barge-ins = 300 ms sustained-speech triggers on noise alone")
    for name, factory in factories.items():
        if "inline" in name:
            continue
        row = []
        for snr in (None, 20, 10, 5):
            hits = total = 0
            for clean in speech:
                pcm = np.concatenate((np.zeros(RATE // 2), clean, np.zeros(RATE // 2)))
                truth = [
                    float(np.mean(pcm[i : i + 160] ** 2)) > (10 ** (-40 / 20) * 32768) ** 2
                    for i in range(0, len(pcm) - 159, 160)
                ]
                if snr is not None:
                    noise = rng.standard_normal(len(pcm))
                    p_sig = np.mean(clean**2)
                    pcm = pcm + noise * np.sqrt(p_sig / 10 ** (snr / 10))
                got, _ = await _decide(factory, _enc(pcm))
                for t, g in zip(truth, got, strict=False):
                    if t:
                        total += 1
                        hits += g
            label = "clean" if snr is None else f"{snr} dB"
            row.append(f"{label} {hits / total:.0%}")
        print(f"{name}: hit " + ", ".join(row))
        fa_row = []
        for kind in ("white", "hum", "coughs"):
            got, triggers = await _decide(factory, _enc(_noise(kind, 10 * RATE, rng)))
            fa_row.append(f"{kind} {sum(got) / len(got):.0%} ({triggers} false barge-ins)")
        print(f"{name}: FA " + ", ".join(fa_row))


async def amain() -> None:
    factories = _factories()
    second = np.concatenate(
        [np.frombuffer(tts_speech(SENTENCES[0]), dtype="<i2"), np.zeros(RATE, dtype="<i2")]
    )
    wire = _enc(np.resize(second, SECONDS * RATE).astype(np.float64))
    frames = CALLS * len(wire) // 160
    print(f"{CALLS} calls x {SECONDS} s of speech+silence, best of {REPEATS} (CPU time)")
    base = await _cpu(_Null, wire)
    print(f"(harness overhead {base / frames * 1e6:.1f} µs per frame, subtracted)")
    for name, factory in factories.items():
        cpu = await _cpu(factory, wire) - base
        print(
            f"{name}: {cpu / frames * 1e6:.1f} µs per 20 ms frame, "
            f"{CALLS} calls = {cpu / SECONDS * 100:.1f}% of one core"
        )
    print(f"\nreal time, {CALLS} calls at random phases ({SECONDS} s wall, one run):")
    base, _ = await _staggered(_Null, wire)
    for name in ("webrtc", "silero (batched, worker thread)"):
        cpu, batch = await _staggered(factories[name], wire)
        extra = f", mean batch {batch:.0f} windows" if batch else ""
        print(
            f"{name}: {(cpu - base) / SECONDS * 100:.1f}% of one core "
            f"(harness {base / SECONDS * 100:.1f}% subtracted){extra}"
        )
    print()
    _memory()
    await _accuracy(factories)


def main() -> None:
    asyncio.run(amain())


if __name__ == "__main__":
    main()
