"""The arithmetic behind the load benchmarks' stall and steal columns."""

from __future__ import annotations

import math
import time

from bench.callload import bucket_quantile, cpu_ticks, steal_pct


def test_steal_is_the_share_of_the_cores_time_between_two_readings() -> None:
    assert steal_pct((10, 1_000), (25, 1_100)) == 15.0
    assert steal_pct((10, 1_000), (10, 1_000)) == 0.0  # no time passed: no figure, no crash


def test_cpu_ticks_read_this_machines_clock() -> None:
    steal0, total0 = cpu_ticks(None)
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        pass
    steal1, total1 = cpu_ticks(None)
    assert total1 > total0 > 0 and steal1 >= steal0
    assert cpu_ticks(0)[1] > 0
    assert cpu_ticks(10_000) == (0, 0)  # a core that does not exist


def test_bucket_quantile_reads_only_what_was_observed_in_between() -> None:
    before = {0.001: 90, 0.01: 100, 0.1: 100, math.inf: 100}
    after = {0.001: 188, 0.01: 199, 0.1: 200, math.inf: 200}  # 98, 1, 1 added
    assert bucket_quantile(before, after, 0.5) == 0.001
    assert bucket_quantile(before, after, 0.99) == 0.01
    assert bucket_quantile(before, after, 1.0) == 0.1
    assert bucket_quantile(after, after, 0.99) == 0.0  # nothing observed
    beyond = {**after, 0.1: 199, math.inf: 201}  # one above the last finite bucket
    assert bucket_quantile(before, beyond, 1.0) == math.inf
