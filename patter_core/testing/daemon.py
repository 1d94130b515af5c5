"""The ``patterd`` config for a daemon on loopback behind a simulated carrier.

``make demo``, the benchmarks (``bench/``) and the daemon tests all start
``patterd`` this way, so they share this one builder.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping
from pathlib import Path

from patter_core.testing.telnyx import SimulatedTelnyx
from patter_core.testing.twilio import SimulatedTwilio

NUMBER = "+15550001234"
ECHO_AGENT = '[agents.echo]\nengine = "echo"\n'


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _string(value: str | Path) -> str:
    """``value`` as a TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(value))


def daemon_config(
    sim: SimulatedTwilio | SimulatedTelnyx,
    *,
    port: int,
    history: Path,
    numbers: Mapping[str, str] | None = None,
    agents: str = ECHO_AGENT,
    bind: str = "127.0.0.1",
    max_calls: int | None = None,
) -> str:
    """TOML text: ``sim`` as the carrier, the public server on ``bind:port`` (with
    ``max_calls`` when given), the store under ``history``, ``numbers`` (number →
    agent; ``NUMBER`` → ``echo`` unless given) and ``agents``, the ``[agents.*]``
    tables as TOML text."""
    if isinstance(sim, SimulatedTelnyx):
        carrier = {"kind": "telnyx", "connection_id": sim.connection_id}
    else:
        carrier = {"kind": "twilio", "account_sid": sim.account_sid}
    carrier["api_base_url"] = sim.api_url
    routes = {NUMBER: "echo"} if numbers is None else numbers
    lines = [
        "[carrier]",
        *(f"{key} = {_string(value)}" for key, value in carrier.items()),
        "",
        "[server]",
        f"bind = {_string(bind)}",
        f"port = {int(port)}",
        f"public_host = {_string(sim.public_host)}",
        *([f"max_calls = {int(max_calls)}"] if max_calls is not None else []),
        "",
        "[store]",
        f"root = {_string(history)}",
        "",
        "[numbers]",
        *(f"{_string(number)} = {_string(agent)}" for number, agent in routes.items()),
        "",
        agents,
    ]
    return "\n".join(lines)
