"""Property tests: control API bodies and query strings, valid, wrong or garbage,
never get a 500 (every handler answers 2xx or a 4xx with an error body)."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.badinput.strategies import JSON, nested, shaped
from tests.test_daemon_api import Api, api, short_tmp  # noqa: F401 (fixtures)

FAST = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
RUNS = ["fast", pytest.param("long", marks=pytest.mark.slow)]

CALL_ID = st.sampled_from(["call-1", "nope", "..", "%2e%2e", "a" * 300]) | st.text(
    st.characters(codec="ascii", exclude_characters="/?#"), min_size=1, max_size=20
)
WRITES = [
    ("POST", "/v1/calls"),
    ("POST", "/v1/calls/{id}/hangup"),
    ("POST", "/v1/calls/{id}/transfer"),
    ("POST", "/v1/calls/{id}/dtmf"),
    ("PUT", "/v1/credentials/{id}"),
    ("DELETE", "/v1/credentials/{id}"),
    ("POST", "/v1/config/reload"),
    ("POST", "/v1/store/rebuild"),
]
READS = ["/v1/status", "/v1/calls", "/v1/calls/live", "/v1/calls/{id}", "/v1/totals",
         "/v1/credentials", "/v1/metrics", "/v1/version"]  # fmt: skip
BODY = (
    shaped(
        {
            "to": st.sampled_from(["+15550004444", "+1", "sip:a@b", "", "+15550000000"])
            | st.text(max_size=20),
            "agent": st.sampled_from(["echo", "sales", "nope"]) | st.text(max_size=10),
            "first_message": st.text(max_size=50),
            "digits": st.sampled_from(["123", "w#", "x", ""]) | st.text(max_size=10),
            "value": st.text(max_size=30),
        }
    ).map(lambda d: json.dumps(d).encode())
    | JSON.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
)
QUERY = st.dictionaries(
    st.sampled_from(
        ["limit", "offset", "direction", "status", "number", "since", "until", "q", "text", "x"]
    ),
    st.sampled_from(["0", "-1", "10", "1e9", "2026-01-01", "2026-13-45T99:00", "inbound", ""])
    | st.text(max_size=12),
    max_size=4,
)


async def _request(target: Api, method: str, path: str, body: bytes | None) -> tuple[int, Any]:
    conn = aiohttp.UnixConnector(path=str(target.socket))
    async with (
        aiohttp.ClientSession(connector=conn) as session,
        session.request(method, f"http://patterd{path}", data=body) as resp,
    ):
        text = await resp.text()
        return resp.status, text


@pytest.mark.parametrize("run", RUNS)
async def test_control_api_never_500(api: Api, run: str) -> None:  # noqa: F811
    loop = asyncio.get_running_loop()
    seen: set[int] = set()

    def drive(method: str, path: str, body: bytes | None) -> int:
        fut = asyncio.run_coroutine_threadsafe(_request(api, method, path, body), loop)
        status, text = fut.result(timeout=15)
        assert status < 500, (method, path, body, text)
        if status >= 400:
            assert "error" in json.loads(text), text
        seen.add(status)
        return status

    @(FAST if run == "fast" else LONG)
    @given(st.sampled_from(WRITES), CALL_ID, BODY)
    @example(("POST", "/v1/calls"), "x", nested(30_000).encode())
    @example(
        ("POST", "/v1/calls"),
        "x",
        b'{"to": "+15550004444", "first_message": "' + b"a" * 5000 + b'"}',
    )
    def writes(route: tuple[str, str], call_id: str, body: bytes) -> None:
        method, path = route
        drive(method, path.format(id=quote(call_id, safe="")), body)

    @(FAST if run == "fast" else LONG)
    @given(st.sampled_from(READS), CALL_ID, QUERY)
    def reads(path: str, call_id: str, query: dict[str, str]) -> None:
        qs = "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items())
        drive("GET", path.format(id=quote(call_id, safe="")) + (f"?{qs}" if qs else ""), None)

    await asyncio.to_thread(writes)
    await asyncio.to_thread(reads)
    assert 200 in seen and any(400 <= s < 500 for s in seen)
