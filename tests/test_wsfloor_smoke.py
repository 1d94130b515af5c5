"""The transport-floor benchmark in miniature, so that it keeps working: each server, 5 sockets."""

from __future__ import annotations

import pytest

from bench.wsfloor import VARIANTS, run_level


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_floor_server_echoes_every_frame(variant: str) -> None:
    result = run_level(variant, calls=5, seconds=1.0, warmup=0.3, pin=False)
    assert result["sent"] >= 5 * 1.0 / 0.02 * 0.9
    assert result["echoed"] == result["sent"]
    assert result["p50_ms"] == result["p50_ms"]  # echoes were matched (not NaN)
    assert result["us_per_frame"] > 0
