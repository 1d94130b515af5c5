from __future__ import annotations

from typing import Any, Literal

import pytest

from patter_core.guardrails import Guardrail, apply_guardrails, guardrail
from patter_core.pricing import Pricing, carrier_cost, usage_cost
from patter_core.tools import Tool, ToolContext, ToolError, call_tool, tool, tool_specs, vet_target

CTX = ToolContext(call_id="c", caller="+1", callee="+2")


def test_tool_decorator_derives_schema_and_descriptions() -> None:
    @tool
    def book(
        name: str,
        party: int,
        when: Literal["lunch", "dinner"],
        notes: str | None = None,
        tags: list[str] | None = None,
        vip: bool = False,
    ) -> dict[str, Any]:
        """Book a table.

        Longer explanation on a second paragraph.

        Args:
            name: Guest name.
            party (int): Number of guests,
                including children.
            when: Which service.
        """
        return {}

    assert book.name == "book"
    assert book.description == "Book a table. Longer explanation on a second paragraph."
    props = book.parameters["properties"]
    assert props["name"] == {"type": "string", "description": "Guest name."}
    assert props["party"] == {
        "type": "integer",
        "description": "Number of guests, including children.",
    }
    assert props["when"] == {
        "enum": ["lunch", "dinner"],
        "type": "string",
        "description": "Which service.",
    }
    assert props["notes"] == {"type": "string"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["vip"] == {"type": "boolean", "default": False}
    assert book.parameters["required"] == ["name", "party", "when"]


def test_tool_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Tool("x")
    with pytest.raises(ValueError, match="name"):
        Tool("bad name", handler=lambda a, c: None)
    with pytest.raises(ValueError, match="http"):
        Tool("x", webhook_url="file:///etc/passwd")
    with pytest.raises(ValueError, match="duplicate"):
        tool_specs([Tool("end_call", handler=lambda a, c: None)])


async def test_named_tool_with_wrong_arguments_is_an_error_result() -> None:
    @tool
    async def f(a: int) -> int:
        """Add one."""
        return a + 1

    assert await call_tool(f, {"a": 1}, CTX) == (2, None)
    result, error = await call_tool(f, {"b": 1}, CTX)
    assert result is None and error is not None and "bad arguments" in error


async def test_unserialisable_result_becomes_text() -> None:
    t = Tool("obj", handler=lambda a, c: object())
    result, error = await call_tool(t, {}, CTX)
    assert error is None and isinstance(result, str)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "0.0.0.0"],
)
async def test_webhook_targets_refused_after_resolution(host: str) -> None:
    with pytest.raises(ToolError, match="non-public"):
        await vet_target(host, 80)


async def test_allow_list_admits_private_target() -> None:
    (res,) = await vet_target("127.0.0.1", 8080, allow_hosts=["127.0.0.1"])
    assert res["host"] == "127.0.0.1" and res["port"] == 8080


async def test_unresolvable_host_is_a_clear_error() -> None:
    with pytest.raises(ToolError, match="cannot resolve"):
        await vet_target("no-such-host.invalid", 80)


def test_guardrails_block_whole_terms_case_insensitively() -> None:
    g = guardrail(name="legal", blocked_terms=["sue", "legal action"], replacement="No.")
    assert apply_guardrails("You could SUE them", [g]) == ("No.", g)
    assert apply_guardrails("Consider legal action.", [g])[1] is g
    assert apply_guardrails("a suede jacket", [g]) == ("a suede jacket", None)


def test_guardrail_check_callable_and_broken_check() -> None:
    digits = Guardrail("no-cards", check=lambda t: sum(c.isdigit() for c in t) >= 12)

    def broken(text: str) -> bool:
        raise RuntimeError("bug")

    g2 = Guardrail("broken", check=broken)
    assert apply_guardrails("card 4111 1111 1111 1111", [g2, digits])[1] is digits
    assert apply_guardrails("hello", [g2, digits]) == ("hello", None)


def test_pricing_overrides_and_unknown_keys() -> None:
    p = Pricing.with_overrides({"stt_per_minute": 0.01})
    assert p.stt_per_minute == 0.01
    assert p.carrier_per_minute == Pricing().carrier_per_minute
    with pytest.raises(ValueError, match="unknown pricing keys"):
        Pricing.with_overrides({"stt_per_hour": 1})


def test_usage_cost_hand_computed() -> None:
    p = Pricing()
    cost = usage_cost(
        {
            "realtime_audio_input_tokens": 10_000,
            "realtime_audio_output_tokens": 5_000,
            "llm_input_tokens": 2_000,
            "llm_cached_tokens": 1_000,
        },
        p,
    )
    # 10k * $40/M + 5k * $80/M = 0.4 + 0.4; LLM 1k*0.15/M + 1k*0.075/M = 0.000225.
    assert cost.realtime == pytest.approx(0.8)
    assert cost.llm == pytest.approx(0.000225)
    assert carrier_cost(0, p) == 0
    assert carrier_cost(1, p) == pytest.approx(0.0085)
    assert carrier_cost(60, p) == pytest.approx(0.0085)
    assert carrier_cost(60.5, p, outbound=True) == pytest.approx(0.028)


def test_realtime_cached_tokens_and_convai_minutes_are_priced() -> None:
    p = Pricing()
    cost = usage_cost(
        {
            "realtime_cached_audio_tokens": 100_000,
            "realtime_cached_text_tokens": 40_000,
            "realtime_text_input_tokens": 1_000,
        },
        p,
    )
    # 100k * $2.5/M + 40k * $2.5/M + 1k * $5/M = 0.25 + 0.1 + 0.005
    assert cost.realtime == pytest.approx(0.355)
    assert cost.units["realtime_cached_audio_tokens"] == 100_000
    # cached input is cheaper than fresh input
    fresh = usage_cost({"realtime_audio_input_tokens": 100_000}, p).realtime
    assert fresh == pytest.approx(4.0) and fresh > 0.25
    convai = usage_cost({"convai_seconds": 90}, p)
    assert convai.realtime == pytest.approx(0.15)  # 1.5 min * $0.10
    assert usage_cost(
        {"convai_seconds": 90}, Pricing.with_overrides({"convai_per_minute": 0.08})
    ).realtime == pytest.approx(0.12)
