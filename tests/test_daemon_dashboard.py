"""patterd's web dashboard, as a subprocess: open only on a loopback bind, and with
``PATTER_DASHBOARD_TOKEN`` (from the credential chain) on any bind, behind the token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from patter_core.testing import SimulatedTwilio
from patter_core.testing.daemon import daemon_config, free_port
from tests.support.daemon_calls import sdk_daemon
from tests.support.daemon_proc import DaemonProcess
from tests.support.fixtures import short_tmp_dir

TOKEN = "daemon-dashboard-token-4f1c9a"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


def _daemon(tmp: Path, sim: SimulatedTwilio, port: int, bind: str, token: str) -> DaemonProcess:
    config = daemon_config(sim, port=port, history=tmp / "history", bind=bind)
    env = {"TWILIO_AUTH_TOKEN": sim.auth_token}
    if token:
        # systemd's LoadCredential= way, one of the credential chain's sources.
        creds = tmp / "creds"
        creds.mkdir()
        (creds / "PATTER_DASHBOARD_TOKEN").write_text(token + "\n")
        env["CREDENTIALS_DIRECTORY"] = str(creds)
    daemon = sdk_daemon(tmp, config, env)
    daemon.argv += ["--log-level", "debug"]
    return daemon


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers=headers or {}, allow_redirects=False) as resp,
    ):
        return resp.status, await resp.text(), dict(resp.headers)


async def test_with_a_token_the_dashboard_is_served_on_any_bind_and_asks_for_it(short_tmp):
    port = free_port()
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        daemon = _daemon(short_tmp, sim, port, "0.0.0.0", TOKEN)
        await asyncio.to_thread(daemon.start)
        try:
            base = f"http://127.0.0.1:{port}/dashboard"
            public = {"Host": "agent.example.com"}  # as through a tunnel or a proxy
            for path in ("", "/api/calls", "/static/app.js"):
                status, _, headers = await _get(base + path, public)
                assert status in (303, 401), path
                assert status != 303 or headers["Location"] == "/dashboard/login"
                bad = {**public, "Authorization": "Bearer wrong-token"}
                assert (await _get(base + path, bad))[0] in (303, 401), path
            # The token in a query string is not a way in: it never goes in a URL.
            assert (await _get(f"{base}/api/calls?token={TOKEN}", public))[0] == 401
            auth = {**public, "Authorization": f"Bearer {TOKEN}"}
            status, body, _ = await _get(base + "/api/calls", auth)
            assert status == 200 and '"calls"' in body
            assert (await _get(base, auth))[0] == 200
            # The login form trades the token for an HttpOnly session cookie.
            async with aiohttp.ClientSession() as http:
                login = base + "/login"
                form = {"token": TOKEN}
                async with http.post(login, data=form, headers=public, allow_redirects=False) as r:
                    assert r.status == 303
                    cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
            session = {**public, "Cookie": cookie.split(";", 1)[0]}
            assert (await _get(base + "/api/calls", session))[0] == 200
            # The carrier's side is unchanged: webhooks still answer on the same port.
            assert (await _get(f"http://127.0.0.1:{port}/health"))[0] == 200
            code, err = await asyncio.to_thread(daemon.stop)
            assert code == 0, err
            assert TOKEN not in err
        finally:
            daemon.__exit__(None, None, None)


async def test_without_a_token_a_public_bind_has_no_dashboard_and_loopback_an_open_one(
    short_tmp,
):
    async with SimulatedTwilio() as sim:
        for bind, expected in (("0.0.0.0", 404), ("127.0.0.1", 200)):
            tmp = short_tmp / bind.replace(".", "_")
            tmp.mkdir()
            port = free_port()
            sim.server_url = f"http://127.0.0.1:{port}"
            daemon = _daemon(tmp, sim, port, bind, "")
            await asyncio.to_thread(daemon.start)
            try:
                url = f"http://127.0.0.1:{port}/dashboard/api/calls"
                assert (await _get(url))[0] == expected, bind
                if expected == 200:
                    # Open on loopback answers only requests addressed to loopback.
                    assert (await _get(url, {"Host": "agent.example.com"}))[0] == 403
                code, err = await asyncio.to_thread(daemon.stop)
                assert code == 0, err
                if expected == 404:
                    assert "is not a loopback bind and PATTER_DASHBOARD_TOKEN is not set" in err
            finally:
                daemon.__exit__(None, None, None)
