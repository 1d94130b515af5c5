"""The load benchmark in miniature, in the default suite: a real patterd, ten calls."""

from __future__ import annotations

import argparse

from bench.callload import main_async


async def test_ten_concurrent_calls_lose_no_frames_and_are_all_recorded() -> None:
    args = argparse.Namespace(
        calls="10",
        seconds=3.0,
        warmup=0.5,
        per_worker=250,
        settle=0.5,
        no_pin=True,
        json=False,
    )
    [result] = await main_async(args)
    assert result["sent"] >= 10 * 3.0 / 0.02
    assert result["lost"] == 0
    assert result["recorded"] == 10
    assert result["drained"]
    assert result["p50"] == result["p50"]  # echoes were matched (not NaN)
    # The daemon's own stall figures were read from its metrics over the window.
    assert result["loop_lag_p99_ms"] >= 1.0  # the upper bound of a bucket, 1 ms at least
    assert 0 <= result["steal_pct"] <= 100
