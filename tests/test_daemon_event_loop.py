"""patterd's ``event_loop`` setting, as a subprocess: each loop carries a real echo call."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from patter_core.testing import SimulatedTwilio, tone_mulaw
from patter_core.testing.daemon import daemon_config, free_port
from patterd.client import PatterClient
from tests.support.daemon_calls import no_live, sdk_daemon, until
from tests.support.daemon_proc import ROOT, base_env
from tests.support.fixtures import short_tmp_dir


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_each_event_loop_carries_a_call(short_tmp: Path, loop: str) -> None:
    port = free_port()
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        # Top-level keys go before the first table.
        base = daemon_config(sim, port=port, history=short_tmp / "history")
        config = f'event_loop = "{loop}"\n\n{base}'
        daemon = sdk_daemon(short_tmp, config, {"TWILIO_AUTH_TOKEN": sim.auth_token})
        await asyncio.to_thread(daemon.start)
        try:
            async with PatterClient(daemon.socket_path) as client:
                call = await sim.inbound_call()
                tone = tone_mulaw(440, 0.3)
                call.say(tone)
                heard = await call.wait_heard(len(tone))
                assert len(heard) >= len(tone)
                await call.hangup()
                await until(lambda: no_live(client))
            code, err = await asyncio.to_thread(daemon.stop)
        finally:
            daemon.__exit__(None, None, None)
    assert code == 0, err
    assert f"event loop: {loop}" in err


def test_uvloop_asked_for_but_missing_is_a_clear_start_error(short_tmp: Path) -> None:
    shadow = short_tmp / "shadow"
    (shadow / "uvloop").mkdir(parents=True)
    (shadow / "uvloop" / "__init__.py").write_text('raise ImportError("no uvloop here")\n')
    config = short_tmp / "patterd.toml"
    config.write_text('event_loop = "uvloop"\n\n[agents.echo]\nengine = "echo"\n')
    env = base_env(short_tmp)
    env["PYTHONPATH"] = f"{shadow}:{ROOT}"
    result = subprocess.run(
        [sys.executable, "-m", "patterd.cli", "run", "--config", str(config)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "uvloop is not installed" in result.stderr and "patter[uvloop]" in result.stderr
