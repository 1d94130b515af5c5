"""patterd with the SDK runtime and a Telnyx carrier, as a subprocess: the same
inbound call, outbound call and restart as over Twilio (test_daemon_sdk.py), so
the daemon is at parity for both carriers and not only the SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from patter_core.testing import tone_mulaw
from patter_core.testing.daemon import daemon_config, free_port
from patter_core.testing.telnyx import SimulatedTelnyx
from patterd.client import PatterClient
from tests.support.daemon_calls import history, is_live, no_live, sdk_daemon, until
from tests.support.daemon_proc import DaemonProcess
from tests.support.fixtures import short_tmp_dir


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


def _daemon(tmp: Path, sim: SimulatedTelnyx, port: int) -> DaemonProcess:
    config = daemon_config(sim, port=port, history=tmp / "history")
    return sdk_daemon(
        tmp, config, {"TELNYX_API_KEY": sim.api_key, "TELNYX_PUBLIC_KEY": sim.public_key}
    )


async def test_daemon_over_telnyx_answers_places_and_remembers_calls(short_tmp):
    port = free_port()
    async with SimulatedTelnyx() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        daemon = _daemon(short_tmp, sim, port)
        await asyncio.to_thread(daemon.start)
        try:
            async with PatterClient(daemon.socket_path) as client:
                call = await sim.inbound_call(from_="+15550007777")
                live = await until(client.live_calls)
                assert live[0].caller == "+15550007777" and live[0].agent == "echo"
                assert sim.commands_of("answer"), "the daemon answered through Call Control"
                tone = tone_mulaw(440, 0.3)
                call.say(tone)
                await call.wait_heard(len(tone))  # the echo came back over the Telnyx stream
                await call.hangup()
                await until(lambda: no_live(client))

                call_id = await client.place_call("+15550004444")
                await until(lambda: is_live(client, call_id))
                placed = next(c for c in await client.live_calls() if c.call_id == call_id)
                assert placed.agent == "echo"  # the agent serving our number, the caller here
                dial = sim.commands_of("dial")[-1]
                assert dial["body"]["to"] == "+15550004444"
                # Hang up at once, while the callee's stream may still be setting up
                # (tests/test_hangup_races.py covers each stage on its own).
                await client.hangup(call_id)
                await until(lambda: no_live(client))
                assert sim.commands_of("hangup"), "hang up went to Call Control"

                ended = await until(lambda: history(client, 2))
                inbound = next(c for c in ended if c["direction"] == "inbound")
                outbound = next(c for c in ended if c["direction"] == "outbound")
                assert inbound["status"] == "completed" and inbound["caller"] == "+15550007777"
                assert outbound["callee"] == "+15550004444"
            code, err = await asyncio.to_thread(daemon.stop)
            assert code == 0, err
            assert sim.api_key not in err
        finally:
            daemon.__exit__(None, None, None)
        again = _daemon(short_tmp, sim, port)
        await asyncio.to_thread(again.start)
        try:
            async with PatterClient(again.socket_path) as client:
                page = await client.calls()
                assert len(page.calls) == 2
                detail = await client.call(inbound["call_id"])
                assert detail.call["status"] == "completed" and detail.live is False
            await asyncio.to_thread(again.stop)
        finally:
            again.__exit__(None, None, None)
