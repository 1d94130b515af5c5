"""The transport-floor benchmark in miniature, so that it keeps working: each server, 20 sockets."""

from __future__ import annotations

import pytest

from bench.wsfloor import VARIANTS, run_level


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_floor_server_echoes_every_frame(variant: str) -> None:
    # 20 sockets for a second: ~1,000 frames, several 10 ms CPU clock ticks of the server
    # (with 5 sockets its whole CPU time could round down to no tick at all).
    result = run_level(variant, calls=20, seconds=1.0, warmup=0.3, pin=False)
    assert result["sent"] >= 20 * 1.0 / 0.02 * 0.9
    assert result["echoed"] == result["sent"]
    assert result["p50_ms"] == result["p50_ms"]  # echoes were matched (not NaN)
    assert result["us_per_frame"] > 0
