"""patterd with the real SDK runtime, as a subprocess, answering and placing calls
through a simulated Twilio, and keeping history across a restart."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from patter_core.testing import CallRefused, SimulatedTwilio, tone_mulaw
from patter_core.testing.daemon import daemon_config, free_port
from patterd.client import ApiError, PatterClient
from tests.support.daemon_calls import history, is_live, no_live, sdk_daemon, until
from tests.support.daemon_proc import DaemonProcess, base_env, run_tool
from tests.support.fixtures import short_tmp_dir


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    yield from short_tmp_dir()


def _daemon(tmp: Path, sim: SimulatedTwilio, port: int) -> DaemonProcess:
    config = daemon_config(sim, port=port, history=tmp / "history")
    return sdk_daemon(tmp, config, {"TWILIO_AUTH_TOKEN": sim.auth_token})


async def test_daemon_answers_places_and_remembers_calls(short_tmp):
    port = free_port()
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        daemon = _daemon(short_tmp, sim, port)
        # The daemon calls the simulated Twilio in this process while starting: don't block it.
        await asyncio.to_thread(daemon.start)
        try:
            assert sim.numbers["+15550001234"]["voice_url"].endswith("/webhooks/twilio/voice")
            async with PatterClient(daemon.socket_path) as client:
                call = await sim.inbound_call(from_="+15550007777")
                live = await until(client.live_calls)
                assert live[0].caller == "+15550007777" and live[0].agent == "echo"
                tone = tone_mulaw(440, 0.3)
                call.say(tone)
                await call.wait_heard(len(tone))
                await call.hangup()
                await until(lambda: no_live(client))

                call_id = await client.place_call("+15550004444")
                await until(lambda: is_live(client, call_id))
                await client.hangup(call_id)
                await until(lambda: no_live(client))
                assert sim.requests_of("update_call")[-1]["form"]["Status"] == "completed"

                ended = await until(lambda: history(client, 2))
                inbound = next(c for c in ended if c["direction"] == "inbound")
                assert inbound["status"] == "completed" and inbound["caller"] == "+15550007777"
                # Two calls allocate enough to set off young collections, and the
                # daemon timed them (its start-up heap is frozen, its pauses counted).
                young = re.search(
                    r'^patter_gc_pause_seconds_count\{generation="0"\} (\d+)$',
                    await client.metrics(),
                    re.M,
                )
                assert young is not None and int(young.group(1)) > 0
            code, err = await asyncio.to_thread(daemon.stop)
            assert code == 0, err
            assert sim.auth_token not in err
        finally:
            daemon.__exit__(None, None, None)
        # A restart reads the same history.
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


async def test_daemon_past_max_calls_refuses_with_busy_and_503(short_tmp):
    port = free_port()
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        config = daemon_config(sim, port=port, history=short_tmp / "history", max_calls=1)
        daemon = sdk_daemon(short_tmp, config, {"TWILIO_AUTH_TOKEN": sim.auth_token})
        await asyncio.to_thread(daemon.start)
        try:
            async with PatterClient(daemon.socket_path) as client:
                call = await sim.inbound_call(from_="+15550007777")
                await until(client.live_calls)
                status = await client.status()
                assert (status.live_calls, status.max_calls) == (1, 1)
                shown = await asyncio.to_thread(
                    run_tool, "patterd.ctl", "status", env=base_env(short_tmp)
                )
                assert "live calls: 1 of 1" in shown.stdout, shown.stderr
                with pytest.raises(CallRefused) as refused:
                    await sim.inbound_call(from_="+15550008888")
                assert refused.value.reason == "busy"
                with pytest.raises(ApiError) as full:
                    await client.place_call("+15550004444")
                assert (full.value.status, full.value.code) == (503, "at_capacity")
                assert not sim.requests_of("create_call"), "nothing dialled past the limit"
                metrics = await client.metrics()
                assert 'patter_calls_refused_total{reason="at_capacity"} 1' in metrics
                await call.hangup()
                await until(lambda: no_live(client))
                ended = await until(lambda: history(client, 2))
                busy = next(c for c in ended if c["caller"] == "+15550008888")
                assert busy["status"] == "busy" and busy["direction"] == "inbound"
                only = (await client.calls(status="busy")).calls
                assert [c["call_id"] for c in only] == [busy["call_id"]]
                # With the first call gone there is room again.
                call_id = await client.place_call("+15550004444")
                await until(lambda: is_live(client, call_id))
                await client.hangup(call_id)
            code, err = await asyncio.to_thread(daemon.stop)
            assert code == 0, err
        finally:
            daemon.__exit__(None, None, None)


async def test_reload_changes_the_default_agent_or_keeps_the_running_config(short_tmp):
    """A reload that named a new default_agent reported success but outbound calls
    kept the old agent; one with an agent that could not be built was an
    'internal error', with the new config half applied."""
    port = free_port()
    agents = '[agents.echo]\nengine = "echo"\n[agents.other]\nengine = "echo"\n'
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        config = daemon_config(sim, port=port, history=short_tmp / "history", agents=agents)
        daemon = sdk_daemon(short_tmp, config, {"TWILIO_AUTH_TOKEN": sim.auth_token})
        await asyncio.to_thread(daemon.start)
        try:
            async with PatterClient(daemon.socket_path) as client:
                path = short_tmp / "patterd.toml"
                path.write_text('default_agent = "other"\n' + config)
                await client.reload()
                call_id = await client.place_call("+15550004444")
                live = await until(client.live_calls)
                assert [(c.call_id, c.agent) for c in live] == [(call_id, "other")]
                await client.hangup(call_id)
                await until(lambda: no_live(client))

                broken = (
                    '[agents.broken.pipeline]\nstt = "deepgram"\ntts = "local"\nllm = "openai"\n'
                )
                path.write_text('default_agent = "other"\n' + config + broken)
                with pytest.raises(ApiError) as refused:
                    await client.reload()
                assert refused.value.status == 422
                assert "stt provider 'deepgram'" in str(refused.value)
                again = await client.place_call("+15550004444")
                live = await until(client.live_calls)
                assert [(c.call_id, c.agent) for c in live] == [(again, "other")]
                await client.hangup(again)
                await until(lambda: no_live(client))
            code, err = await asyncio.to_thread(daemon.stop)
            assert code == 0, err
            assert "logger=twilio" not in err, "twilio-python's request dumps stay out of INFO"
        finally:
            daemon.__exit__(None, None, None)


async def test_a_call_cut_by_the_drain_grace_is_recorded_as_shutdown(short_tmp):
    """It was recorded as 'hangup', the same as a caller hanging up."""
    port = free_port()
    async with SimulatedTwilio() as sim:
        sim.server_url = f"http://127.0.0.1:{port}"
        config = daemon_config(sim, port=port, history=short_tmp / "history")
        daemon = sdk_daemon(short_tmp, config, {"TWILIO_AUTH_TOKEN": sim.auth_token})
        daemon.argv += ["--grace", "0.3"]
        await asyncio.to_thread(daemon.start)
        try:
            async with PatterClient(daemon.socket_path) as client:
                call = await sim.inbound_call(from_="+15550007777")
                live = await until(client.live_calls)
            code, err = await asyncio.to_thread(daemon.stop)
            assert code == 0, err
            assert f"grace period over: ending call {live[0].call_id}" in err
            await call.wait_closed()
        finally:
            daemon.__exit__(None, None, None)
        again = sdk_daemon(short_tmp, config, {"TWILIO_AUTH_TOKEN": sim.auth_token})
        await asyncio.to_thread(again.start)
        try:
            async with PatterClient(again.socket_path) as client:
                detail = await client.call(live[0].call_id)
                assert (detail.call["reason"], detail.call["status"]) == ("shutdown", "shutdown")
            await asyncio.to_thread(again.stop)
        finally:
            again.__exit__(None, None, None)
