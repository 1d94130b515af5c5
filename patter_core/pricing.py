"""Default prices (USD) and the arithmetic that turns usage units into cost.

Figures are list prices for US usage, first written 2025-06 and checked
against stored copies of vendor pages on 2026-12-01; ``PRICE_SOURCES``
records, per rate, whether a vendor page confirmed it, where from, and when.
Vendors change prices and negotiate discounts, so treat these as defaults:
override any of them with ``pricing={...}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from patter_core.events import CostParts

PRICES_AS_OF = "2025-06"  # when the table was written; PRICE_SOURCES says what was checked
PRICES_CHECKED = "2026-12-01"


@dataclass(frozen=True, slots=True)
class Pricing:
    """Rates per billing unit. ``carrier_per_minute`` is billed per started minute."""

    carrier_per_minute: float = 0.0085  # Twilio inbound, US local
    carrier_outbound_per_minute: float = 0.014  # Twilio outbound, US local
    stt_per_minute: float = 0.0077  # Deepgram Nova-3 streaming
    llm_input_per_million: float = 0.15  # gpt-4o-mini
    llm_output_per_million: float = 0.60
    llm_cached_input_per_million: float = 0.075
    tts_per_thousand_chars: float = 0.015  # OpenAI tts-1 ($15 / 1M chars)
    realtime_audio_input_per_million: float = 40.0  # gpt-4o-realtime-preview
    realtime_audio_output_per_million: float = 80.0
    realtime_text_input_per_million: float = 5.0
    realtime_text_output_per_million: float = 20.0
    # Cached input is billed far below fresh input; long calls re-read the whole context.
    realtime_cached_audio_input_per_million: float = 2.5
    realtime_cached_text_input_per_million: float = 2.5
    # gpt-4o-transcribe for the caller side of a realtime session
    realtime_transcription_input_per_million: float = 6.0
    realtime_transcription_output_per_million: float = 10.0
    # ElevenLabs Conversational AI bills call minutes, not tokens (Creator/Pro rate)
    convai_per_minute: float = 0.10

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, float] | None = None) -> Pricing:
        """Defaults with some rates replaced; an unknown key is an error, not a silent no-op."""
        base = cls()
        if not overrides:
            return base
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown pricing keys {unknown}; known: {sorted(known)}")
        return replace(base, **{k: float(v) for k, v in overrides.items()})


@dataclass(frozen=True, slots=True)
class PriceSource:
    """Where a default rate comes from, so a stale one is visible rather than trusted."""

    confirmed: bool  # a vendor page stated this figure
    source: str
    checked: str = PRICES_CHECKED


_OPENAI_RT = (
    "developers.openai.com/api/docs/models/gpt-4o-realtime-preview (model shown as shut down)"
)
_SECONDARY_4O_MINI = (
    "unconfirmed: vendor page not in the corpus; secondary price lists agree "
    "(ai.cloudprice.net citing openai_pricing 2026-06-20, openrouter.ai, docs.venice.ai)"
)
PRICE_SOURCES: dict[str, PriceSource] = {
    "carrier_per_minute": PriceSource(
        True, "support.twilio.com 'How Volume Pricing works': inbound local $0.0085/min (undated)"
    ),
    "carrier_outbound_per_minute": PriceSource(
        False,
        "unconfirmed: the same Twilio article's example uses $0.013/min outbound (undated); "
        "twilio.com/en-us/voice/pricing/us not in the corpus; kept at $0.014",
    ),
    "stt_per_minute": PriceSource(
        False,
        "unconfirmed, likely stale: deepgram.com/pricing not in the corpus; two secondary "
        "datasets citing it give Nova-3 monolingual streaming pay-as-you-go $0.0048/min "
        "(hail-hq/hail costs/stt.json 2026-05-05; D3velop open-gauntlet asr.json 2026-08-01)",
    ),
    "llm_input_per_million": PriceSource(False, _SECONDARY_4O_MINI),
    "llm_output_per_million": PriceSource(False, _SECONDARY_4O_MINI),
    "llm_cached_input_per_million": PriceSource(False, _SECONDARY_4O_MINI),
    "tts_per_thousand_chars": PriceSource(
        True, "developers.openai.com/api/docs/models/tts-1: $15.00 / 1M characters"
    ),
    "realtime_audio_input_per_million": PriceSource(True, _OPENAI_RT),
    "realtime_audio_output_per_million": PriceSource(True, _OPENAI_RT),
    "realtime_text_input_per_million": PriceSource(True, _OPENAI_RT),
    "realtime_text_output_per_million": PriceSource(True, _OPENAI_RT),
    "realtime_cached_audio_input_per_million": PriceSource(
        False, "unconfirmed: OpenAI's cached-input rate for gpt-4o-realtime, not re-checked"
    ),
    "realtime_cached_text_input_per_million": PriceSource(
        False, "unconfirmed: OpenAI's cached-input rate for gpt-4o-realtime, not re-checked"
    ),
    "realtime_transcription_input_per_million": PriceSource(
        False, "unconfirmed: gpt-4o-transcribe input rate, not re-checked"
    ),
    "realtime_transcription_output_per_million": PriceSource(
        False, "unconfirmed: gpt-4o-transcribe output rate, not re-checked"
    ),
    "convai_per_minute": PriceSource(
        False,
        "unconfirmed: elevenlabs.io/pricing not checked; its plans list Agents at about "
        "$0.10 per minute of conversation (plan dependent)",
    ),
}


# Usage keys a brain reports in ``ResponseDone.usage``.
USAGE_KEYS = (
    "stt_seconds",
    "llm_input_tokens",
    "llm_output_tokens",
    "llm_cached_tokens",
    "tts_characters",
    "realtime_audio_input_tokens",
    "realtime_audio_output_tokens",
    "realtime_text_input_tokens",
    "realtime_text_output_tokens",
    "realtime_cached_audio_tokens",
    "realtime_cached_text_tokens",
    "realtime_transcription_input_tokens",
    "realtime_transcription_output_tokens",
    "convai_seconds",
)


def usage_cost(usage: Mapping[str, float], pricing: Pricing) -> CostParts:
    """Cost of one reply's usage (no carrier part)."""
    u = {k: float(usage.get(k, 0.0)) for k in USAGE_KEYS}
    cached = min(u["llm_cached_tokens"], u["llm_input_tokens"])
    llm = (
        (u["llm_input_tokens"] - cached) * pricing.llm_input_per_million
        + cached * pricing.llm_cached_input_per_million
        + u["llm_output_tokens"] * pricing.llm_output_per_million
    ) / 1e6
    realtime = (
        u["realtime_audio_input_tokens"] * pricing.realtime_audio_input_per_million
        + u["realtime_audio_output_tokens"] * pricing.realtime_audio_output_per_million
        + u["realtime_text_input_tokens"] * pricing.realtime_text_input_per_million
        + u["realtime_text_output_tokens"] * pricing.realtime_text_output_per_million
        + u["realtime_cached_audio_tokens"] * pricing.realtime_cached_audio_input_per_million
        + u["realtime_cached_text_tokens"] * pricing.realtime_cached_text_input_per_million
        + u["realtime_transcription_input_tokens"]
        * pricing.realtime_transcription_input_per_million
        + u["realtime_transcription_output_tokens"]
        * pricing.realtime_transcription_output_per_million
    ) / 1e6 + u["convai_seconds"] / 60.0 * pricing.convai_per_minute
    return CostParts(
        stt=u["stt_seconds"] / 60.0 * pricing.stt_per_minute,
        llm=llm,
        tts=u["tts_characters"] / 1000.0 * pricing.tts_per_thousand_chars,
        realtime=realtime,
        units={k: v for k, v in u.items() if v},
    )


def carrier_cost(duration_s: float, pricing: Pricing, *, outbound: bool = False) -> float:
    """Carriers bill each started minute."""
    rate = pricing.carrier_outbound_per_minute if outbound else pricing.carrier_per_minute
    return math.ceil(max(duration_s, 0.0) / 60.0) * rate


def add_costs(a: CostParts, b: CostParts) -> CostParts:
    units = dict(a.units)
    for k, v in b.units.items():
        units[k] = units.get(k, 0.0) + v
    return CostParts(
        carrier=a.carrier + b.carrier,
        stt=a.stt + b.stt,
        llm=a.llm + b.llm,
        tts=a.tts + b.tts,
        realtime=a.realtime + b.realtime,
        units=units,
    )
