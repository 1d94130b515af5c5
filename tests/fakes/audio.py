"""Generated test audio: voiced bursts webrtcvad classifies as speech, silence, noise."""

from __future__ import annotations

import numpy as np

from patter_core.session.vad import _ULAW

RATE = 8000


def voiced(ms: int, *, f0: float = 140.0, seed: int = 0, rate: int = RATE) -> bytes:
    """A harmonic tone with a 4 Hz syllable envelope (PCM16 LE): vowel-like to a VAD."""
    n = rate * ms // 1000
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    sig = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 15))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    peak = float(np.max(np.abs(sig))) or 1.0
    return (sig * env / peak * 12000).astype("<i2").tobytes()


def noise_burst(ms: int, *, seed: int = 1, rate: int = RATE) -> bytes:
    """Broadband noise (a cough, a door): also voiced to a VAD, but yields no words."""
    rng = np.random.default_rng(seed)
    return (
        (rng.standard_normal(rate * ms // 1000) * 4000).clip(-32000, 32000).astype("<i2").tobytes()
    )


def silence(ms: int, *, rate: int = RATE) -> bytes:
    return bytes(2 * (rate * ms // 1000))


_ORDER = np.argsort(_ULAW, kind="stable")
_SORTED = _ULAW[_ORDER].astype(np.int32)


def mulaw(pcm: bytes) -> bytes:
    """Nearest µ-law code per sample (test-side encoder, independent of the code under test)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    idx = np.clip(np.searchsorted(_SORTED, x), 1, len(_SORTED) - 1)
    left, right = _SORTED[idx - 1], _SORTED[idx]
    idx = np.where(x - left <= right - x, idx - 1, idx)
    return _ORDER[idx].astype(np.uint8).tobytes()


def tts_speech(text: str, *, rate: int = RATE, wpm: int = 160) -> bytes:
    """Real synthesised speech (eSpeak NG through LocalTTS), PCM16 LE at ``rate``.

    Neural VADs ignore the harmonic stand-in above, so they are tested on this.
    """
    import asyncio

    from patter_core.audio.resample import StreamResampler
    from patter_core.providers.tts.local import LocalTTS

    async def run() -> bytes:
        tts = LocalTTS(words_per_minute=wpm)
        return b"".join([c async for c in tts.synthesize(text)])

    raw = asyncio.run(run()) if not _loop_running() else _in_thread(run)
    pcm = np.frombuffer(raw, dtype="<i2")
    out = StreamResampler(LocalTTS().output_format.sample_rate, rate).process(pcm)
    return out.astype("<i2").tobytes()


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _in_thread(fn):  # type: ignore[no-untyped-def]
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(fn())).result()
