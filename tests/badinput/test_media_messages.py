"""Property tests: no media-socket message, however malformed, raises out of a leg's parser."""

from __future__ import annotations

from typing import Any, cast

import pytest
from hypothesis import HealthCheck, example, given, settings

from patter_core.carriers.base import LegAudio, LegDtmf, LegMark, LegStarted, LegStopped
from patter_core.carriers.media import MAX_MEDIA_MESSAGE
from patter_core.carriers.telnyx.leg import TelnyxLeg
from patter_core.carriers.twilio.leg import TwilioLeg
from tests.badinput.strategies import MEDIA_TEXT, nested

EVENTS = (LegStarted, LegAudio, LegDtmf, LegMark, LegStopped)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))


def _legs() -> list[Any]:
    ws = cast(Any, None)  # parsing never touches the socket
    return [TwilioLeg(ws, "c1"), TelnyxLeg(ws, "c1"), TelnyxLeg(ws, "c1", codec="L16")]


def _check(text: str) -> None:
    for leg in _legs():
        out = leg._parse(text)
        assert out is None or isinstance(out, EVENTS)


@FAST
@given(MEDIA_TEXT)
@example(nested(30_000))
@example('{"event": "media", "media": {"payload": "' + "A" * MAX_MEDIA_MESSAGE + '"}}')
@example('{"event": {"x": 1}}')
@example('{"event": "start", "start": []}')
@example('{"event": "dtmf", "dtmf": {"digit": "55"}}')
def test_media_parser_never_raises(text: str) -> None:
    _check(text)


@pytest.mark.slow
@LONG
@given(MEDIA_TEXT)
def test_media_parser_never_raises_long(text: str) -> None:
    _check(text)
