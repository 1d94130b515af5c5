"""The churn benchmark in miniature, in the default suite: 20 short calls through patterd."""

from __future__ import annotations

from bench.callrate import run


async def test_short_calls_are_all_recorded_and_costed() -> None:
    result = await run(calls=20, concurrent=5, frames=10, pin=False)
    assert result["recorded"] == 20
    assert result["lost"] == 0
    assert result["cpu_ms_per_call"] > 0
    assert result["loop_lag_p99_ms"] >= 1.0  # read from the daemon's loop-lag histogram
