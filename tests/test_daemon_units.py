"""Config locating, credential resolution order, log redaction, sd_notify and the event log."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from patter_core.events import CallAnswered
from patterd.config import ConfigError, locate, parse_config
from patterd.credentials import CredentialError, Credentials
from patterd.eventlog import EventLog
from patterd.logs import JsonFormatter, LogfmtFormatter, SecretRedactor
from patterd.paths import default_socket_path
from patterd.sdnotify import notify, watchdog_interval
from tests.support.file_keyring import FileKeyring

SRC = """\
default_agent = "a"

[server]
port = 8000

[agents.a]
engine = "echo"

[[agents.a.tools]]
name = "one"
url = "https://x"

[[agents.a.tools]]
name = "two"
url = "nope"

[agents."front desk"]
agent = "json:dumps"
"""


def test_locate_finds_keys_in_tables_and_array_tables() -> None:
    assert locate(SRC, ("server", "port")) == 4
    assert locate(SRC, ("agents", "a", "engine")) == 7
    assert locate(SRC, ("agents", "a", "tools", 1, "url")) == 15
    assert locate(SRC, ("agents", "front desk", "agent")) == 18
    assert locate(SRC, ("default_agent",)) == 1
    assert locate(SRC, ("agents", "a", "voice")) == 6  # missing key: the table header


def test_errors_name_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(SRC, Path("/etc/patter/patterd.toml"))
    assert err.value.problems == [
        "/etc/patter/patterd.toml:15: agents.a.tools[1].url: String should match pattern '^https?://'"
    ]


def test_agent_kinds_and_python_imports() -> None:
    ok = parse_config(SRC.replace('url = "nope"', 'url = "http://y"'), Path("c.toml"))
    assert ok.agents["front desk"].agent == "json:dumps"
    with pytest.raises(ConfigError) as err:
        parse_config('[agents.a]\nagent = "no_such_pkg_xyz.mod:thing"\n', Path("c.toml"))
    assert "c.toml:2: agents.a.agent" in err.value.problems[0]
    assert "cannot import module 'no_such_pkg_xyz.mod'" in err.value.problems[0]
    with pytest.raises(ConfigError) as err:
        parse_config('[agents.a]\nagent = "json:nothing_here"\n', Path("c.toml"))
    assert "has no 'nothing_here'" in err.value.problems[0]
    with pytest.raises(ConfigError) as err:
        parse_config('[agents.a]\nengine = "echo"\nagent = "json:dumps"\n', Path("c.toml"))
    assert "exactly one of" in err.value.problems[0]
    with pytest.raises(ConfigError) as err:
        parse_config('[numbers]\n"+15551234567" = "ghost"\n', Path("c.toml"))
    assert "unknown agent 'ghost'" in err.value.problems[0]
    with pytest.raises(ConfigError) as err:
        parse_config("[server]\nbindd = 1\n", Path("c.toml"))
    assert err.value.problems[0].startswith("c.toml:2: server.bindd: Extra inputs")
    with pytest.raises(ConfigError) as err:
        parse_config("[server]\nmax_calls = 0\n", Path("c.toml"))
    assert err.value.problems[0].startswith("c.toml:2: server.max_calls: Input should be greater")
    assert parse_config("[server]\nmax_calls = 150\n", Path("c.toml")).server.max_calls == 150


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PATTER_TEST_KEYRING_FILE", str(tmp_path / "kr.json"))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    yield tmp_path / "kr.json"
    keyring.set_keyring(previous)


def test_resolution_order(file_keyring: Path, tmp_path: Path) -> None:
    creds_dir = tmp_path / "creds"
    creds_dir.mkdir()
    env = {"CREDENTIALS_DIRECTORY": str(creds_dir)}
    c = Credentials({}, environ=env)
    assert c.get("OPENAI_API_KEY") is None
    c.set("OPENAI_API_KEY", "from-keyring-123")
    assert c.lookup("OPENAI_API_KEY") == ("from-keyring-123", "keyring")
    (creds_dir / "OPENAI_API_KEY").write_text("from-systemd-123\n")
    assert c.lookup("OPENAI_API_KEY") == ("from-systemd-123", "credentials_directory")
    env["OPENAI_API_KEY"] = "from-env-123"
    assert c.lookup("OPENAI_API_KEY") == ("from-env-123", "env")
    c.set_explicit({"OPENAI_API_KEY": "from-config-123"})
    assert c.lookup("OPENAI_API_KEY") == ("from-config-123", "config")
    (creds_dir / "TWILIO_AUTH_TOKEN").write_text("tok-123456")
    listed = {i.name: i.source for i in c.list_names()}
    assert listed == {"OPENAI_API_KEY": "config", "TWILIO_AUTH_TOKEN": "credentials_directory"}
    with pytest.raises(CredentialError, match="patterctl creds set GROQ_API_KEY"):
        c.require("GROQ_API_KEY")
    with pytest.raises(CredentialError) as err:
        c.set("../etc/passwd", "x")
    assert "invalid credential name" in str(err.value)


def test_keyring_index_lists_custom_names(file_keyring: Path) -> None:
    c = Credentials({}, environ={})
    c.set("MY_WEBHOOK_TOKEN", "hook-secret-1")
    assert [(i.name, i.source) for i in c.list_names()] == [("MY_WEBHOOK_TOKEN", "keyring")]
    assert c.delete("MY_WEBHOOK_TOKEN") is True
    assert c.delete("MY_WEBHOOK_TOKEN") is False
    assert c.list_names() == []
    assert "hook-secret-1" not in json.loads(file_keyring.read_text())["patter"].values()


def test_redactor_masks_every_known_secret(file_keyring: Path) -> None:
    redactor = SecretRedactor()
    c = Credentials({"TWILIO_AUTH_TOKEN": "tw-secret-987"}, environ={}, on_secret=redactor.add)
    c.set("OPENAI_API_KEY", "sk-live-abcdef")
    for fmt in (LogfmtFormatter(), JsonFormatter()):
        record = logging.LogRecord(
            "x",
            logging.ERROR,
            "f",
            1,
            "auth with %s failed (%s)",
            ("sk-live-abcdef", "tw-secret-987"),
            None,
        )
        try:
            raise ValueError("bad key sk-live-abcdef")
        except ValueError:
            record.exc_info = sys.exc_info()
        assert redactor.filter(record)
        line = fmt.format(record)
        assert "sk-live-abcdef" not in line and "tw-secret-987" not in line
        assert "***" in line


def test_sd_notify_datagram(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        assert notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert sock.recv(100) == b"READY=1"
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})


def test_sd_notify_to_a_receiver_that_stopped_reading_fails_instead_of_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="patterd.sdnotify")
    path = tmp_path / "full.sock"
    env = {"NOTIFY_SOCKET": str(path)}
    results: list[bool] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(str(path))
        # Far more datagrams than the kernel queues for an unread socket.
        sender = threading.Thread(
            target=lambda: results.extend(notify("WATCHDOG=1", env) for _ in range(5_000)),
            daemon=True,
        )
        sender.start()
        sender.join(timeout=20)
        assert not sender.is_alive(), "notify blocked on a full queue"
        assert results[0] is True and results[-1] is False
        assert rx.recv(64) == b"WATCHDOG=1"  # what fitted was delivered
        failures = [r for r in caplog.records if "sd_notify WATCHDOG failed" in r.message]
        assert len(failures) == 1  # one warning for the whole streak, not one per ping
        while True:  # drain the queue; the next ping gets through and says so
            try:
                rx.recv(64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        assert notify("WATCHDOG=1", env)
        assert any("sd_notify WATCHDOG works again" in r.message for r in caplog.records)
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    pid = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


def test_socket_path_defaults() -> None:
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}) == Path(
        "/run/user/7/patter/patterd.sock"
    )
    assert default_socket_path({"RUNTIME_DIRECTORY": "/run/patter"}) == Path(
        "/run/patter/patterd.sock"
    )
    assert default_socket_path({"PATTERD_SOCKET": "/x/y.sock", "XDG_RUNTIME_DIR": "/r"}) == Path(
        "/x/y.sock"
    )
    assert default_socket_path({}).name == "patterd.sock"
    assert f"patter-{os.getuid()}" in str(default_socket_path({}))


def test_event_log_ring_and_gaps() -> None:
    log = EventLog(capacity=3)
    for _ in range(5):
        log.append(CallAnswered(call_id="c"))
    missed, entries = log.after(0)
    assert missed == 2 and [e.pos for e in entries] == [3, 4, 5]
    missed, entries = log.after(4)
    assert missed == 0 and [e.pos for e in entries] == [5]
    assert log.after(5) == (0, [])
    log.skip(2)
    missed, entries = log.after(5)
    assert missed == 2 and entries == []
    with pytest.raises(ValueError):
        EventLog(0)


def test_daemon_config_for_a_simulated_carrier_is_a_valid_patterd_config() -> None:
    from patter_core.demo import demo_config
    from patter_core.testing import SimulatedTelnyx, SimulatedTwilio
    from patter_core.testing.daemon import daemon_config

    twilio, telnyx = SimulatedTwilio(), SimulatedTelnyx()
    twilio.api_url, telnyx.api_url = "http://127.0.0.1:1/", "http://127.0.0.1:2/v2"
    odd = Path('/tmp/a "quoted" \\ dir/é')  # quotes, a backslash and non-ASCII survive
    config = parse_config(daemon_config(twilio, port=8123, history=odd), Path("x.toml"))
    assert (config.carrier.kind, config.carrier.account_sid) == ("twilio", twilio.account_sid)
    assert config.carrier.api_base_url == twilio.api_url
    assert (config.server.bind, config.server.port) == ("127.0.0.1", 8123)
    assert config.server.public_host == twilio.public_host
    assert config.store.root == odd
    assert config.numbers == {"+15550001234": "echo"} and config.agents["echo"].engine == "echo"
    config = parse_config(
        daemon_config(telnyx, port=8124, history=odd, numbers={"+15550009999": "echo"}),
        Path("x.toml"),
    )
    assert (config.carrier.kind, config.carrier.connection_id) == ("telnyx", telnyx.connection_id)
    assert config.numbers == {"+15550009999": "echo"}
    demo = parse_config(demo_config(twilio, 8125, odd), Path("x.toml"), import_agents=False)
    assert demo.numbers == {"+15550001234": "receptionist"}
    pipeline = demo.agents["receptionist"].pipeline
    assert pipeline is not None and pipeline.llm.provider == "on_message"


async def second_desk(text: str) -> str:
    return f"second desk: {text}"


def test_each_on_message_agent_keeps_its_own_handler() -> None:
    """Several agents with handlers used to share the default agent's (with a
    warning); each now carries its own, and one with nothing to reply with is
    refused when the config is loaded."""
    from patter_core import Patter, Twilio
    from patter_core.demo import receptionist
    from patterd.credentials import Credentials
    from patterd.runtime import RuntimeFailure
    from patterd.sdk_runtime import build_agent

    text = (
        '[agents.front.pipeline]\nstt = "local"\ntts = "local"\n'
        'llm = { provider = "on_message", options = '
        '{ handler = "patter_core.demo:receptionist" } }\n'
        '[agents.back.pipeline]\nstt = "local"\ntts = "local"\n'
        'llm = { provider = "on_message", options = '
        '{ handler = "tests.test_daemon_units:second_desk" } }\n'
    )
    config = parse_config(text, Path("c.toml"))
    phone = Patter(carrier=Twilio("AC" + "0" * 32, "t"), phone_number="+15550001234")
    creds = Credentials(environ={})
    front = build_agent(phone, "front", config.agents["front"], creds)
    back = build_agent(phone, "back", config.agents["back"], creds)
    assert front.reply_handler(None) is receptionist
    assert back.reply_handler(receptionist) is second_desk
    mute = phone.agent(stt=front.stt, tts=front.tts)
    with pytest.raises(ValueError, match="nothing to reply with"):
        mute.check_servable(None)
    python_agent = parse_config('[agents.p]\nagent = "string:ascii_letters"\n', Path("c.toml"))
    with pytest.raises(RuntimeFailure, match="must be an Agent"):
        build_agent(phone, "p", python_agent.agents["p"], creds)


def test_without_a_store_root_the_daemon_honours_patter_log_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The systemd unit sets PATTER_LOG_DIR=/var/lib/patter; patterd ignored it
    and wrote under the service user's ~/.local/share instead."""
    from patter_core.bus import EventBus
    from patter_core.store import resolve_root
    from patterd.credentials import Credentials
    from patterd.sdk_runtime import SdkRuntime

    monkeypatch.setenv("PATTER_LOG_DIR", str(tmp_path / "state"))
    config = parse_config('[agents.echo]\nengine = "echo"\n', Path("c.toml"))
    runtime = SdkRuntime(config, EventBus(), Credentials(environ={}))
    assert resolve_root(runtime.phone.persist) == tmp_path / "state"
    rooted = parse_config(f'[store]\nroot = "{tmp_path / "x"}"\n', Path("c.toml"))
    assert resolve_root(SdkRuntime(rooted, EventBus(), Credentials(environ={})).phone.persist) == (
        tmp_path / "x"
    )


def test_every_unknown_agent_is_reported_at_its_own_line() -> None:
    """Used to be one problem at line 1, '(top level)', the others hidden."""
    src = (
        'default_agent = "nobody"\n[numbers]\n"+15550001111" = "ghost"\n'
        '"+15550002222" = "echo"\n[agents.echo]\nengine = "echo"\n'
    )
    with pytest.raises(ConfigError) as err:
        parse_config(src, Path("e.toml"))
    assert err.value.problems == [
        "e.toml:3: numbers.+15550001111: unknown agent 'ghost'",
        "e.toml:1: default_agent: 'nobody' is not declared under [agents]",
    ]
