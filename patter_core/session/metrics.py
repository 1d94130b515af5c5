"""Per-reply latency and cost, and the call's running totals."""

from __future__ import annotations

from dataclasses import dataclass, field

from patter_core.events import CostParts, LatencyParts
from patter_core.pricing import Pricing, add_costs, carrier_cost, usage_cost


@dataclass(slots=True)
class ReplyTiming:
    """Clock readings (seconds) for one agent reply; ``None`` until they happen."""

    end_of_speech: float | None = None
    first_sent: float | None = None
    first_heard: float | None = None
    barge_in_to_clear_ms: float | None = None
    pipeline: dict[str, float] = field(default_factory=dict)

    def latency(self) -> LatencyParts:
        def ms(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) * 1000.0, 1)

        return LatencyParts(
            end_of_speech_to_first_audio_ms=ms(self.end_of_speech, self.first_sent),
            end_of_speech_to_first_heard_ms=ms(self.end_of_speech, self.first_heard),
            stt_final_ms=self.pipeline.get("stt_final_ms"),
            llm_first_token_ms=self.pipeline.get("llm_first_token_ms"),
            tts_first_byte_ms=self.pipeline.get("tts_first_byte_ms"),
            barge_in_to_clear_ms=self.barge_in_to_clear_ms,
        )


class CostMeter:
    """Adds up reply usage; carrier time is prorated per turn and billed per started
    minute in the call total (how carriers invoice)."""

    def __init__(self, pricing: Pricing, *, outbound: bool = False) -> None:
        self.pricing = pricing
        self.outbound = outbound
        self.usage_total = CostParts()
        self._carrier_billed_s = 0.0

    def turn(self, usage: dict[str, float], elapsed_s: float) -> CostParts:
        part = usage_cost(usage, self.pricing)
        rate = (
            self.pricing.carrier_outbound_per_minute
            if self.outbound
            else self.pricing.carrier_per_minute
        )
        delta = max(elapsed_s - self._carrier_billed_s, 0.0)
        self._carrier_billed_s = max(elapsed_s, self._carrier_billed_s)
        part.carrier = delta / 60.0 * rate
        part.units["carrier_seconds"] = delta
        self.usage_total = add_costs(self.usage_total, part)
        return part

    def running_total(self) -> float:
        return self.usage_total.total

    def call_total(self, duration_s: float) -> CostParts:
        total = self.usage_total.model_copy(deep=True)
        total.carrier = carrier_cost(duration_s, self.pricing, outbound=self.outbound)
        total.units["carrier_seconds"] = duration_s
        return total
