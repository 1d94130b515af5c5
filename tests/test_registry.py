"""The call registry's live count, which admission (max_calls) reads on every new call."""

from patter_core.server import registry as reg
from patter_core.server.registry import CallRegistry


def test_live_count_matches_the_live_calls_through_ending_and_forgetting(monkeypatch):
    monkeypatch.setattr(reg, "ENDED_MEMORY", 3)  # forget ended calls early
    calls = CallRegistry()
    records = [calls.new(direction="inbound", carrier="twilio") for _ in range(6)]
    assert calls.live_count() == len(calls.live()) == 6
    for n, record in enumerate(records[:5], start=1):
        calls.mark_ended(record)
        calls.mark_ended(record)  # twice: still one ended call
        assert calls.live_count() == len(calls.live()) == 6 - n
    assert len(calls) == 1 + 3, "only the last three ended calls are remembered"
    calls.new(direction="outbound", carrier="telnyx")
    assert calls.live_count() == len(calls.live()) == 2
