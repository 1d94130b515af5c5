"""schemathesis against the control API's own OpenAPI document.

The API normally listens on a Unix socket; here the same aiohttp app (with the
scripted test runtime) is served on a loopback TCP port from a background
thread so schemathesis can drive it. No generated request may get a 500."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest

schemathesis = pytest.importorskip("schemathesis")

from aiohttp import web  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    negative_data_rejection,
    positive_data_acceptance,
    status_code_conformance,
)

from patter_core.bus import EventBus  # noqa: E402
from patterd.api.app import ApiContext, build_app  # noqa: E402
from patterd.api.openapi import openapi_document  # noqa: E402
from patterd.config import parse_config  # noqa: E402
from patterd.credentials import Credentials  # noqa: E402
from patterd.eventlog import EventLog, EventPump  # noqa: E402
from patterd.metrics import Metrics  # noqa: E402
from tests.support.file_keyring import FileKeyring  # noqa: E402
from tests.support.runtime import ScriptedRuntime  # noqa: E402

CONFIG = '[agents.echo]\nengine = "echo"\n'
schema = schemathesis.openapi.from_dict(openapi_document("9.9.9")).exclude(
    path="/v1/events"  # a WebSocket stream, not a request/response endpoint
)


class _Served:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="api-under-test", daemon=True)

    def start(self) -> _Served:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("the API did not start")
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _run(self) -> None:
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        path = self.tmp / "cfg.toml"
        config = parse_config(CONFIG, path)
        bus = EventBus()
        creds = Credentials(environ={})
        runtime = ScriptedRuntime(config, bus, creds)
        events = EventLog(capacity=64)
        metrics = Metrics(bus, lambda: len(runtime.live_calls()))
        pump = EventPump(bus, events, [metrics.observe])
        pump.start()

        async def reload() -> None:
            await runtime.reload_config(parse_config(CONFIG, path))

        ctx = ApiContext(
            runtime=runtime,
            events=events,
            metrics=metrics,
            credentials=creds,
            version="9.9.9",
            config_path=path,
            socket_path=self.tmp / "api.sock",
            accepting=lambda: runtime.accepting,
            reload=reload,
            credential_names=lambda: (),
        )
        runner = web.AppRunner(build_app(ctx))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await pump.aclose()
        await runner.cleanup()


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    mp = pytest.MonkeyPatch()
    mp.setenv("PATTER_TEST_KEYRING_FILE", str(tmp / "keyring.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    served = _Served(tmp).start()
    try:
        yield f"http://127.0.0.1:{served.port}"
    finally:
        served.stop()
        keyring.set_keyring(previous)
        mp.undo()


CHECKS: Any = [status_code_conformance]
# The document is looser than the server in a few places (credential names have a
# pattern, query timestamps accept epoch numbers, an agent must exist in the config),
# so "valid by the schema ⇒ accepted" and its converse are not asserted.
EXCLUDED: Any = [positive_data_acceptance, negative_data_rejection]


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_control_api_conforms_to_its_openapi(case: Any, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=10)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    case.validate_response(response, additional_checks=CHECKS, excluded_checks=EXCLUDED)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
def test_control_api_conforms_to_its_openapi_long(case: Any, base_url: str) -> None:
    response = case.call(base_url=base_url, timeout=10)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    case.validate_response(response, additional_checks=CHECKS, excluded_checks=EXCLUDED)
