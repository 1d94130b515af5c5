"""The control API in-process: a test Runtime publishing real events on a real EventBus,
served by aiohttp over a real Unix socket, used through the typed client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import keyring
import keyring.backends.fail
import pytest
from aiohttp import web

from patter_core.bus import EventBus
from patter_core.events import CallEnded, Dtmf, Transcript
from patter_core.validation import require_e164
from patterd.api import models
from patterd.api.app import ApiContext, build_app
from patterd.api.openapi import openapi_document
from patterd.client import ApiError, CallHasEnded, NotFound, PatterClient
from patterd.config import parse_config
from patterd.credentials import Credentials
from patterd.eventlog import EventLog, EventPump
from patterd.metrics import Metrics
from tests.support.file_keyring import FileKeyring
from tests.support.fixtures import short_tmp_dir
from tests.support.runtime import ScriptedRuntime

CONFIG = '[agents.echo]\nengine = "echo"\n[agents.sales]\nengine = "echo"\n'


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


@dataclass
class Api:
    client: PatterClient
    runtime: ScriptedRuntime
    events: EventLog
    reloads: list[str]
    socket: Path
    config_text: list[str]


@pytest.fixture
async def api(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    monkeypatch.setenv("PATTER_TEST_KEYRING_FILE", str(short_tmp / "keyring.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    path = short_tmp / "cfg.toml"
    config = parse_config(CONFIG, path)
    bus = EventBus()
    creds = Credentials(environ={})
    runtime = ScriptedRuntime(config, bus, creds)
    events = EventLog(capacity=8)
    metrics = Metrics(bus, lambda: len(runtime.live_calls()))
    pump = EventPump(bus, events, [metrics.observe])
    pump.start()
    reloads: list[str] = []
    config_text = [CONFIG]

    async def reload() -> None:
        new = parse_config(config_text[0], path)
        await runtime.reload_config(new)
        reloads.append("ok")

    sock = short_tmp / "api.sock"
    ctx = ApiContext(
        runtime=runtime,
        events=events,
        metrics=metrics,
        credentials=creds,
        version="9.9.9",
        config_path=path,
        socket_path=sock,
        accepting=lambda: runtime.accepting,
        reload=reload,
        credential_names=lambda: (),
    )
    runner = web.AppRunner(build_app(ctx))
    await runner.setup()
    await web.UnixSite(runner, str(sock)).start()
    client = PatterClient(sock)
    try:
        yield Api(client, runtime, events, reloads, sock, config_text)
    finally:
        await client.close()
        await pump.aclose()
        await runner.cleanup()
        keyring.set_keyring(previous)


async def settle(api: Api) -> None:
    """Let the pump move what the bus queued into the event log."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_status_version_and_live_calls(api: Api) -> None:
    status = await api.client.status()
    assert status.version == "9.9.9" and status.live_calls == 0 and status.accepting
    assert (await api.client.version()).api == "v1"
    call_id = await api.client.place_call("+15551234567", agent="sales", first_message="hi")
    live = await api.client.live_calls()
    assert [(c.call_id, c.agent, c.callee) for c in live] == [(call_id, "sales", "+15551234567")]
    detail = await api.client.call(call_id)
    assert detail.live and detail.call["transcript"] == [{"role": "agent", "text": "hi"}]


async def test_history_paging(api: Api) -> None:
    ids = [await api.client.place_call(f"+1555000111{i}") for i in range(5)]
    page1 = await api.client.calls(limit=2)
    page2 = await api.client.calls(limit=2, offset=page1.next_offset or 0)
    page3 = await api.client.calls(limit=2, offset=page2.next_offset or 0)
    seen = [c["call_id"] for p in (page1, page2, page3) for c in p.calls]
    assert sorted(seen) == sorted(ids)
    assert page3.next_offset is None
    days = (await api.client.totals()).days
    assert days[0]["calls"] == 5


async def test_hangup_transfer_dtmf(api: Api) -> None:
    sub = api.runtime.bus.subscribe()
    a = await api.client.place_call("+15551234567")
    b = await api.client.place_call("+15551234568")
    await api.client.send_dtmf(a, "12#")
    await api.client.transfer(b, "sip:desk@example.com")
    await api.client.hangup(a)
    assert api.runtime.transfers == [(b, "sip:desk@example.com")]
    assert await api.client.live_calls() == []
    got = []
    while (ev := sub.get_nowait()) is not None:
        got.append(ev)
    assert [e.digit for e in got if isinstance(e, Dtmf)] == ["1", "2", "#"]
    ended = {e.call_id: e.status for e in got if isinstance(e, CallEnded)}
    assert ended == {a: "completed", b: "transferred"}
    with pytest.raises(NotFound):
        await api.client.call("missing")


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/calls", b"{not json", 400),
        ("POST", "/v1/calls", b"[1, 2]", 400),
        ("POST", "/v1/calls", b'{"to": "5551234"}', 422),
        ("POST", "/v1/calls", b'{"to": "+15551234567", "extra": 1}', 422),
        ("POST", "/v1/calls/x/dtmf", b'{"digits": "12;rm"}', 422),
        ("POST", "/v1/calls/x/transfer", b'{"to": "javascript:1"}', 422),
        ("PUT", "/v1/credentials/lower", b'{"value": "abcdefgh"}', 400),
        ("PUT", "/v1/credentials/OPENAI_API_KEY", b'{"value": ""}', 422),
        ("GET", "/v1/calls?limit=abc", b"", 422),
        ("GET", "/v1/calls?bogus=1", b"", 422),
        ("GET", "/v1/events?since=-1", b"", 422),
        ("GET", "/v1/events", b"", 400),
        ("GET", "/v1/nope", b"", 404),
    ],
)
async def test_bad_requests_get_clear_4xx(
    api: Api, method: str, path: str, body: bytes, status: int
) -> None:
    connector = aiohttp.UnixConnector(path=str(api.socket))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.request(method, "http://x" + path, data=body) as r,
    ):
        data = await r.json()
    assert r.status == status
    assert data["error"]["message"]


async def test_place_call_refused_and_draining(api: Api) -> None:
    with pytest.raises(ApiError) as err:
        await api.client.place_call("+15550000000")
    assert err.value.status == 502 and "carrier refused" in str(err.value)
    api.runtime.stop_accepting()
    with pytest.raises(ApiError) as err:
        await api.client.place_call("+15551234567")
    assert err.value.status == 503


async def test_credentials_routes_never_return_values(api: Api) -> None:
    await api.client.set_credential("DEEPGRAM_API_KEY", "dg-secret-value-123")
    names = await api.client.credentials()
    assert [(n.name, n.source) for n in names] == [("DEEPGRAM_API_KEY", "keyring")]
    raw = await api.client._request("GET", "/v1/credentials")
    assert "dg-secret-value-123" not in str(raw)
    await api.client.delete_credential("DEEPGRAM_API_KEY")
    assert await api.client.credentials() == []
    with pytest.raises(NotFound):
        await api.client.delete_credential("DEEPGRAM_API_KEY")


async def test_reload_route(api: Api) -> None:
    await api.client.reload()
    assert api.reloads == ["ok"] and api.runtime.reloads == 1
    api.config_text[0] = "[agents.x]\nengine = 3\n"
    with pytest.raises(ApiError) as err:
        await api.client.reload()
    assert err.value.status == 422
    assert any("cfg.toml:2: agents.x.engine" in d for d in err.value.details)


async def test_metrics_exposition(api: Api) -> None:
    call_id = await api.client.place_call("+15551234567")
    await api.client.hangup(call_id)
    await settle(api)
    text = await api.client.metrics()
    assert 'patter_calls_total{outcome="completed"} 1' in text
    assert 'patter_turn_latency_seconds_bucket{le="0.5"} 1' in text
    assert 'patter_turn_latency_seconds_bucket{le="0.3"} 0' in text
    assert "patter_barge_in_seconds_count 1" in text
    assert 'patter_cost_usd_total{part="carrier"} 0.010000' in text
    assert "patter_live_calls 0" in text
    assert "patter_event_bus_dropped_total 0" in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2


async def test_openapi_matches_the_router(api: Api) -> None:
    doc = await api.client.openapi()
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served: set[tuple[str, str]] = set()
    runner_app = _app_of(api)
    for route in runner_app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        served.add((route.method, str(path)))
    assert served == documented
    for ref_holder in _refs(doc):
        name = ref_holder.rsplit("/", 1)[1]
        assert name in doc["components"]["schemas"], name
    assert openapi_document("1")["paths"].keys() == doc["paths"].keys()


def _app_of(api: Api) -> web.Application:
    ctx = ApiContext(
        runtime=api.runtime,
        events=api.events,
        metrics=Metrics(api.runtime.bus, lambda: 0),
        credentials=Credentials(environ={}),
        version="x",
        config_path=Path("x"),
        socket_path=api.socket,
        accepting=lambda: True,
        reload=lambda: asyncio.sleep(0),
        credential_names=lambda: (),
    )
    return build_app(ctx)


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


async def test_events_stream_resume_with_since(api: Api) -> None:
    call_id = await api.client.place_call("+15551234567", first_message="one")
    await settle(api)
    seen: list[int] = []
    end = api.events.last_pos
    async for item in api.client.events(since=0):
        assert item.event is not None
        seen.append(item.pos)
        if item.pos == end:
            break
    assert seen == list(range(1, end + 1))
    # Reconnect from the last position: only newer events arrive.
    resume_at = seen[-1]
    api.runtime.say(call_id, "second")
    await settle(api)
    async for item in api.client.events(since=resume_at):
        assert item.pos == resume_at + 1
        assert isinstance(item.event, Transcript) and item.event.text == "second"
        break


async def test_events_stream_filters_by_call_and_reports_gaps(api: Api) -> None:
    a = await api.client.place_call("+15551234567")
    await settle(api)
    # Capacity is 8 and a call publishes 5 events: position 1 has fallen out.
    b = await api.client.place_call("+15551234568")
    await settle(api)
    stream = api.client.events(since=0)
    first = await anext(stream)
    assert first.event is None and first.missed == api.events.first_pos - 1
    await stream.aclose()
    items = []
    async for item in api.client.events(call_id=b, since=0):
        if item.event is None:
            continue
        items.append(item.event)
        if isinstance(item.event, Transcript):
            break
    assert {e.call_id for e in items} == {b}
    assert a != b


async def test_events_stream_reconnects_after_server_restart(api: Api, short_tmp: Path) -> None:
    """The client resumes from its last position when the connection drops."""
    call_id = await api.client.place_call("+15551234567")
    await settle(api)
    got: list[int] = []
    stream = api.client.events(since=0, reconnect_for_s=20)
    got.append((await anext(stream)).pos)
    # Drop every open connection by closing the client session under the iterator.
    assert api.client._session is not None
    await api.client._session.close()
    api.runtime.say(call_id, "after the drop")
    await settle(api)
    texts = []
    async for item in stream:
        got.append(item.pos)
        if isinstance(item.event, Transcript):
            texts.append(item.event.text)
            if item.event.text == "after the drop":
                break
    await stream.aclose()
    assert got == sorted(set(got)), "no event twice, none out of order"
    assert got == list(range(got[0], got[-1] + 1)), "nothing missed across the reconnect"


async def test_events_stream_carries_on_past_an_event_it_cannot_send(api: Api) -> None:
    """An event whose text cannot be UTF-8 is passed over; before, it ended the
    stream, and every client replaying past it, without a word."""
    call_id = await api.client.place_call("+15551234567")
    await settle(api)
    start = api.events.last_pos
    api.runtime.bus.publish(Transcript(call_id=call_id, role="caller", text="half \ud83d"))
    api.runtime.bus.publish(
        Transcript.model_construct(call_id=call_id, role="caller", text="\ud83d", final=True)
    )
    api.runtime.say(call_id, "after")
    await settle(api)
    texts: list[str] = []
    async with asyncio.timeout(10):
        async for item in api.client.events(since=start):
            if isinstance(item.event, Transcript):
                texts.append(item.event.text)
                if item.event.text == "after":
                    break
    assert texts == ["half \ufffd", "after"]


async def _raw(api: Api, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    connector = aiohttp.UnixConnector(path=str(api.socket))
    async with (
        aiohttp.ClientSession(connector=connector) as s,
        s.request(method, "http://x" + path, data=body) as r,
    ):
        return r.status, await r.json()


async def test_live_call_operations_on_an_ended_call_say_it_has_ended(api: Api) -> None:
    """Before, hangup/dtmf/transfer on a call `show` still displays answered 404 not found."""
    call_id = await api.client.place_call("+15551234567")
    await api.client.hangup(call_id)
    assert not (await api.client.call(call_id)).live
    for op in (
        api.client.hangup(call_id),
        api.client.send_dtmf(call_id, "1"),
        api.client.transfer(call_id, "+15557654321"),
    ):
        with pytest.raises(CallHasEnded) as err:
            await op
        assert err.value.status == 409 and err.value.code == "call_ended"
        assert str(err.value) == f"call {call_id} has ended (status: completed)"
    with pytest.raises(NotFound):
        await api.client.hangup("never-was")
    doc = await api.client.openapi()
    for op_path in ("hangup", "dtmf", "transfer"):
        assert "409" in doc["paths"][f"/v1/calls/{{call_id}}/{op_path}"]["post"]["responses"]


@pytest.mark.parametrize(
    "number",
    ["+1555", "+155512", "+1555123", "+15551234567", "+123456789012345", "+1234567890123456"],
)
async def test_place_call_number_rule_is_the_sdks(api: Api, number: str) -> None:
    """The API accepted "+1555", which the SDK then refused as a 502 runtime failure."""
    try:
        require_e164(number)
        sdk_accepts = True
    except ValueError:
        sdk_accepts = False
    status, data = await _raw(api, "POST", "/v1/calls", f'{{"to": "{number}"}}'.encode())
    assert status == (201 if sdk_accepts else 422), data
    status, _ = await _raw(api, "POST", "/v1/calls/x/transfer", f'{{"to": "{number}"}}'.encode())
    assert status == (404 if sdk_accepts else 422)


async def test_openapi_number_pattern_is_the_sdks(api: Api) -> None:
    from patter_core import validation

    doc = await api.client.openapi()
    schemas = doc["components"]["schemas"]
    assert schemas["PlaceCallRequest"]["properties"]["to"]["pattern"] == validation._E164.pattern
    transfer = schemas["TransferRequest"]["properties"]["to"]["pattern"]
    assert validation._E164.pattern[1:-1] in transfer
    assert validation._E164.pattern == models.E164_PATTERN


async def _frames(api: Api, query: str, n: int) -> list[dict]:
    connector = aiohttp.UnixConnector(path=str(api.socket))
    out: list[dict] = []
    async with (
        asyncio.timeout(5),
        aiohttp.ClientSession(connector=connector) as s,
        s.ws_connect("http://x/v1/events?" + query) as ws,
    ):
        while len(out) < n:
            out.append(await ws.receive_json())
    return out


async def test_events_since_ahead_of_the_log_is_answered_with_a_reset(api: Api) -> None:
    """A cursor past the last position (a restarted daemon) used to get silence forever."""
    await api.client.place_call("+15551234567", first_message="one")
    await settle(api)
    status = await api.client.status()
    assert status.instance and status.event_position == api.events.last_pos
    ahead = status.event_position + 100
    reset, first = await _frames(api, f"since={ahead}", 2)
    assert reset == {
        "kind": "reset", "pos": 0, "missed": 0, "event": None, "instance": status.instance
    }  # fmt: skip
    assert first["kind"] == "event" and first["pos"] == 1
    # A position of another daemon instance is reset too, even if it is not ahead.
    reset, first = await _frames(api, "since=2&instance=some-older-daemon", 2)
    assert reset["kind"] == "reset" and first["pos"] == 1
    # This instance's own position carries on as before.
    (frame,) = await _frames(api, f"since=2&instance={status.instance}", 1)
    assert frame["kind"] == "event" and frame["pos"] == 3


async def test_client_events_with_a_future_cursor_start_over(api: Api) -> None:
    await api.client.place_call("+15551234567", first_message="one")
    await settle(api)
    stream = api.client.events(since=api.events.last_pos + 50)
    async with asyncio.timeout(5):
        first = await anext(stream)
        second = await anext(stream)
    await stream.aclose()
    assert first.restarted and first.pos == 0 and first.event is None
    assert second.pos == 1 and second.event is not None


async def test_keyring_that_cannot_store_is_a_503_with_a_hint(api: Api) -> None:
    """Before, "keyring refused to store X: NoKeyringError" was a 400: a usage error."""
    keyring.set_keyring(keyring.backends.fail.Keyring())
    with pytest.raises(ApiError) as err:
        await api.client.set_credential("FOO_KEY", "value-1234")
    assert err.value.status == 503 and err.value.code == "keyring_unavailable"
    text = str(err.value)
    assert "NoKeyringError" in text and "LoadCredential=FOO_KEY" in text
    assert "[credentials]" in text and "environment" in text
    with pytest.raises(ApiError) as err:
        await api.client.delete_credential("FOO_KEY")
    assert err.value.status == 503
    # A bad name is still the caller's mistake.
    with pytest.raises(ApiError) as err:
        await api.client.set_credential("lower", "value-1234")
    assert err.value.status == 400
    doc = await api.client.openapi()
    assert "503" in doc["paths"]["/v1/credentials/{name}"]["put"]["responses"]


async def test_empty_call_id_is_refused_by_the_client(api: Api) -> None:
    with pytest.raises(ValueError, match="empty"):
        await api.client.call("")
