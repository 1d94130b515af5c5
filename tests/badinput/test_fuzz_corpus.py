"""A fuzz corpus for the webhook and media parsers, kept in ``tests/fuzz_corpus/``.

The default suite replays every file in it. The slow fuzz run
(``pytest -m slow tests/badinput/test_fuzz_corpus.py``) generates inputs with
hypothesis and adds each one that reaches an outcome the corpus has not seen
yet (a new result kind, counter or HTTP status and reason) — a cheap stand-in
for coverage guidance. Commit the new files it writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patter_core.carriers.telnyx.leg import TelnyxLeg
from patter_core.carriers.telnyx.webhooks import AMD_EVENTS
from patter_core.carriers.twilio.leg import TwilioLeg
from tests.badinput.strategies import MEDIA_TEXT
from tests.badinput.test_webhooks import TELNYX_BODY, TWILIO_FORM
from tests.carrier_harness import carrier_rig

CORPUS = Path(__file__).resolve().parents[1] / "fuzz_corpus"
KINDS = ("voice", "status", "recording", "amd")
# The Telnyx events the server tells apart; any other type is one outcome, "other"
# (keyed by the raw type, every random string was a "new" outcome and got saved).
TELNYX_EVENTS = frozenset(
    {
        "call.initiated",
        "call.answered",
        "call.hangup",
        "call.dtmf.received",
        "call.recording.saved",
        "streaming.failed",
        *AMD_EVENTS,
    }
)


def _files(kind: str) -> list[Path]:
    return sorted((CORPUS / kind).glob("*.bin"))


def _save(kind: str, data: bytes) -> bool:
    folder = CORPUS / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha1(data).hexdigest()[:16]}.bin"
    if path.exists():
        return False
    path.write_bytes(data)
    return True


def _media_outcome(text: str) -> str:
    parts = []
    for leg in (TwilioLeg(cast(Any, None), "c"), TelnyxLeg(cast(Any, None), "c")):
        out = leg._parse(text)
        parts.append(f"{type(out).__name__}:{','.join(sorted(leg.stats))}")
    return "|".join(parts)


def _reason(status: int, text: str) -> str:
    return f"{status}:{text[:40]}"


def _telnyx_outcome(body: bytes, status: int, text: str) -> str:
    try:
        event = str(json.loads(body)["data"]["event_type"])
    except Exception:
        event = "?"
    return f"{event if event in TELNYX_EVENTS else 'other'}:{_reason(status, text)}"


async def _replay_twilio(sim: Any) -> set[str]:
    """Post every Twilio corpus file; the outcomes they reach (none may be a 500)."""
    seen = set()
    for path in _files("twilio"):
        kind, _, body = path.read_bytes().partition(b"\n")
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        status, text = await sim.post_webhook(sim.webhook_url(kind.decode()), form, body=body)
        assert status < 500, (path.name, text)
        seen.add(f"{kind.decode()}:{_reason(status, text)}")
    return seen


async def _replay_telnyx(sim: Any) -> set[str]:
    seen = set()
    for path in _files("telnyx"):
        body = path.read_bytes()
        status, text = await sim.post_raw(body)
        assert status < 500, (path.name, text)
        seen.add(_telnyx_outcome(body, status, text))
    return seen


# --- replay (default suite) -------------------------------------------------------


def test_corpus_is_present() -> None:
    for kind in ("media", "twilio", "telnyx"):
        assert _files(kind), f"tests/fuzz_corpus/{kind} is empty"


def test_media_corpus_replays_without_raising() -> None:
    outcomes = {_media_outcome(p.read_bytes().decode("utf-8", "replace")) for p in _files("media")}
    assert len(outcomes) > 1


async def test_webhook_corpus_replays_without_a_500() -> None:
    async with carrier_rig("twilio") as rig:
        assert len(await _replay_twilio(rig.sim)) > 1
    async with carrier_rig("telnyx") as rig:
        assert len(await _replay_telnyx(rig.sim)) > 1


# --- the fuzz run (opt in) -------------------------------------------------------

FUZZ = settings(
    max_examples=int(__import__("os").environ.get("PATTER_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.slow
def test_fuzz_media_parser_grows_the_corpus() -> None:
    seen = {_media_outcome(p.read_bytes().decode("utf-8", "replace")) for p in _files("media")}

    @FUZZ
    @given(MEDIA_TEXT)
    def fuzz(text: str) -> None:
        outcome = _media_outcome(text)
        if outcome not in seen:
            seen.add(outcome)
            _save("media", text.encode())

    fuzz()


@pytest.mark.slow
async def test_fuzz_webhooks_grow_the_corpus() -> None:
    loop = asyncio.get_running_loop()

    def drive(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=15)

    async with carrier_rig("twilio") as rig:
        sim = rig.sim
        seen = await _replay_twilio(sim)  # only outcomes the corpus lacks are saved

        @FUZZ
        @given(st.sampled_from(KINDS), TWILIO_FORM)
        def twilio(kind: str, form: dict[str, str]) -> None:
            body = urlencode(form).encode()
            status, text = drive(sim.post_webhook(sim.webhook_url(kind), form, body=body))
            assert status < 500
            outcome = f"{kind}:{_reason(status, text)}"
            if outcome not in seen:
                seen.add(outcome)
                _save("twilio", kind.encode() + b"\n" + body)

        await asyncio.to_thread(twilio)
    async with carrier_rig("telnyx") as rig:
        sim = rig.sim
        seen = await _replay_telnyx(sim)

        @FUZZ
        @given(TELNYX_BODY)
        def telnyx(body: bytes) -> None:
            status, text = drive(sim.post_raw(body))
            assert status < 500
            outcome = _telnyx_outcome(body, status, text)
            if outcome not in seen:
                seen.add(outcome)
                _save("telnyx", body)

        await asyncio.to_thread(telnyx)
