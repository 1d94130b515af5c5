"""Hypothesis strategies for what the outside world sends us."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def nested(depth: int) -> str:
    """JSON nested far past the parser's recursion limit."""
    return "[" * depth + "]" * depth


def shaped(keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts that mostly have the expected keys, with values right, wrong or missing."""
    return st.fixed_dictionaries({}, optional={k: v | JSON for k, v in keys.items()}).flatmap(
        lambda d: st.dictionaries(st.text(max_size=8), JSON, max_size=2).map(
            lambda extra: {**extra, **d}
        )
    )


B64 = st.binary(max_size=200).map(lambda b: __import__("base64").b64encode(b).decode())

MEDIA_KINDS = ["media", "start", "stop", "mark", "dtmf", "connected", "error", "nope"]

MEDIA_MESSAGE: st.SearchStrategy[dict[str, Any]] = st.builds(
    lambda kind, body: {"event": kind, **body},
    st.sampled_from(MEDIA_KINDS) | JSON,
    shaped(
        {
            "media": shaped(
                {
                    "payload": B64 | st.text(max_size=20),
                    "track": st.sampled_from(["inbound", "outbound"]),
                    "timestamp": st.integers() | st.text(max_size=5),
                    "chunk": st.text(max_size=5),
                }
            ),
            "start": shaped(
                {
                    "streamSid": st.text(max_size=10),
                    "callSid": st.text(max_size=10),
                    "customParameters": st.dictionaries(st.text(max_size=5), JSON, max_size=3),
                    "media_format": shaped({"encoding": st.text(max_size=5)}),
                }
            ),
            "mark": shaped({"name": st.text(max_size=10)}),
            "dtmf": shaped({"digit": st.text(max_size=2)}),
            "payload": JSON,
            "streamSid": st.text(max_size=10),
            "stream_id": st.text(max_size=10),
        }
    ),
)

MEDIA_TEXT = MEDIA_MESSAGE.map(json.dumps) | st.text(max_size=300) | JSON.map(json.dumps)
