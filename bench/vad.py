"""How much of one core the caller VAD takes for 200 concurrent calls.

Feeds one second of µ-law audio per call (voiced and silent halves) through
``VoiceDetector`` + ``SpeechTracker`` exactly as a session does, 20 ms at a
time, and prints CPU time per frame and the share of a core 200 calls need.
Run: ``python -m bench.vad``
"""

from __future__ import annotations

import time

import numpy as np

from patter_core.audio.formats import MULAW_8K
from patter_core.session.vad import SpeechTracker, VoiceDetector

CALLS = 200
SECONDS = 5


def _audio() -> bytes:
    rate = 8000
    t = np.arange(rate // 2) / rate
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    pcm = np.concatenate([voiced / np.max(np.abs(voiced)) * 12000, np.zeros(rate // 2)])
    # Cheap µ-law stand-in: any byte pattern costs the VAD the same.
    return (np.clip(pcm / 256, -127, 127).astype(np.int8).view(np.uint8) ^ 0xFF).tobytes()


def main() -> None:
    second = _audio()
    calls = [(VoiceDetector(MULAW_8K), SpeechTracker()) for _ in range(CALLS)]
    frames = 0
    start = time.process_time()
    for _ in range(SECONDS):
        for off in range(0, len(second), 160):
            chunk = second[off : off + 160]
            for det, tracker in calls:
                for f in det.feed(chunk):
                    tracker.update(f)
                    frames += 1
    cpu = time.process_time() - start
    print(f"frames: {frames}, cpu: {cpu:.3f} s")
    print(f"per 20 ms frame: {cpu / frames * 1e6:.1f} µs")
    print(f"{CALLS} calls use {cpu / SECONDS * 100:.1f}% of one core")


if __name__ == "__main__":
    main()
