"""Every default rate says where it comes from, so unchecked prices cannot hide."""

from __future__ import annotations

from dataclasses import fields

from patter_core.pricing import PRICE_SOURCES, Pricing


def test_every_rate_has_a_source_and_unconfirmed_ones_say_so() -> None:
    assert set(PRICE_SOURCES) == {f.name for f in fields(Pricing)}
    for name, src in PRICE_SOURCES.items():
        assert src.source, name
        assert src.confirmed or src.source.startswith("unconfirmed"), name
