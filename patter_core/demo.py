"""``make demo``: what exists so far, run for real."""

from __future__ import annotations

import time

import numpy as np

from patter_core.audio import MULAW_8K, PCM16_16K
from patter_core.audio.g711 import ulaw_encode
from patter_core.audio.transcode import Transcoder


def main() -> int:
    seconds = 10
    t = np.arange(8000 * seconds) / 8000
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    wire = ulaw_encode(tone)
    inbound, outbound = Transcoder(MULAW_8K, PCM16_16K), Transcoder(PCM16_16K, MULAW_8K)
    start = time.process_time()
    back = b"".join(
        outbound.convert(inbound.convert(wire[i : i + 160])) for i in range(0, len(wire), 160)
    )
    cpu = time.process_time() - start
    frames = len(wire) // 160
    print(f"Transcoded {seconds} s of a 440 Hz tone through the carrier edge, frame by frame:")
    print(f"  {frames} frames of µ-law 8 kHz -> PCM16 16 kHz -> µ-law 8 kHz")
    per_frame = cpu * 1e6 / frames
    print(f"  {per_frame:.1f} µs CPU per 20 ms frame (both directions), {len(back)} bytes out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
