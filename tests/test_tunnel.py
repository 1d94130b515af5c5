import os
import stat
import textwrap

import pytest

from patter_core.tunnel import CloudflareTunnel, Static, TunnelError, normalize_host
from patter_core.validation import require_e164, require_port


def _fake_cloudflared(tmp_path, body: str) -> str:
    path = tmp_path / "cloudflared"
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


async def test_cloudflare_tunnel_reads_public_host_and_stops_child(tmp_path):
    pidfile = tmp_path / "pid"
    binary = _fake_cloudflared(
        tmp_path,
        f"""\
        echo $$ > {pidfile}
        echo "$@" > {tmp_path}/args
        echo "INF Requesting new quick Tunnel on trycloudflare.com..." >&2
        echo "INF |  https://quiet-lake-1234.trycloudflare.com  |" >&2
        exec sleep 60
        """,
    )
    tunnel = CloudflareTunnel(binary=binary, start_timeout=10)
    host = await tunnel.start(8123)
    assert host == "quiet-lake-1234.trycloudflare.com"
    assert "--url http://127.0.0.1:8123" in (tmp_path / "args").read_text()
    pid = int(pidfile.read_text())
    os.kill(pid, 0)  # running
    await tunnel.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_cloudflared_exiting_early_is_a_clear_error(tmp_path):
    binary = _fake_cloudflared(tmp_path, 'echo "ERR failed to dial" >&2\nexit 3\n')
    with pytest.raises(TunnelError, match="exited with code 3"):
        await CloudflareTunnel(binary=binary).start(8000)


async def test_cloudflared_silent_times_out(tmp_path):
    binary = _fake_cloudflared(tmp_path, "exec sleep 30\n")
    with pytest.raises(TunnelError, match="no tunnel URL"):
        await CloudflareTunnel(binary=binary, start_timeout=0.5).start(8000)


async def test_missing_cloudflared_names_the_binary():
    with pytest.raises(TunnelError, match="cloudflared-missing-xyz"):
        await CloudflareTunnel(binary="cloudflared-missing-xyz").start(8000)


async def test_static_host_is_normalised():
    assert await Static("https://abc.ngrok.io/").start(1) == "abc.ngrok.io"
    with pytest.raises(ValueError):
        normalize_host("https://abc.ngrok.io/path")


@pytest.mark.parametrize("good", ["+15550001234", "+442071838750", "+8613800138000"])
def test_e164_accepts(good):
    assert require_e164(good) == good


@pytest.mark.parametrize("bad", ["15550001234", "+0155", "+1 555 000 1234", "", "+1555abc1234"])
def test_e164_rejects(bad):
    with pytest.raises(ValueError, match=r"E\.164"):
        require_e164(bad)


@pytest.mark.parametrize("bad", [0, 65536, -1, True, "8000"])
def test_port_range(bad):
    with pytest.raises(ValueError, match="port"):
        require_port(bad)


async def test_tunnel_ready_gives_the_host_before_the_server_is_ready():
    import asyncio

    from patter_core import EchoEngine, Patter, Twilio
    from patter_core.testing import SimulatedTwilio

    async with SimulatedTwilio() as sim:
        phone = Patter(
            carrier=Twilio(sim.account_sid, sim.auth_token, api_base_url=sim.api_url),
            phone_number="+15550001234",
            persist=False,
        )
        ready_when_tunnel_was = []
        phone.tunnel_ready.add_done_callback(
            lambda _: ready_when_tunnel_was.append(phone.ready.done())
        )
        task = asyncio.create_task(
            phone.serve(phone.agent(engine=EchoEngine()), port=0, tunnel=Static(sim.public_host))
        )
        assert await asyncio.wait_for(phone.tunnel_ready, 10) == sim.public_host
        assert await asyncio.wait_for(phone.ready, 10) == sim.public_host
        assert ready_when_tunnel_was == [False]
        await phone.disconnect()
        await asyncio.wait_for(task, 10)


async def test_tunnel_ready_fails_with_the_tunnels_error():
    import asyncio

    from patter_core import EchoEngine, Patter, Twilio

    phone = Patter(carrier=Twilio("AC" + "0" * 32, "t"), phone_number="+15550001234", persist=False)
    serving = asyncio.create_task(
        phone.serve(
            phone.agent(engine=EchoEngine()),
            port=0,
            tunnel=CloudflareTunnel(binary="cloudflared-missing-xyz"),
        )
    )
    with pytest.raises(TunnelError, match="cloudflared-missing-xyz"):
        await asyncio.wait_for(phone.tunnel_ready, 10)
    with pytest.raises(TunnelError):
        await serving
