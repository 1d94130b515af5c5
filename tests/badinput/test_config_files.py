"""Property tests: any config file text gives a DaemonConfig or a ConfigError that
names the problems — never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from patterd.config import ConfigError, DaemonConfig, parse_config

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
LONG = settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))

SECTIONS = ["carrier", "server", "store", "numbers", "agents.echo", "agents.sales",
            "agents.echo.pipeline", "agents.echo.pipeline.stt", "telemetry", "credentials",
            "nope", "agents", "agents.echo.tools"]  # fmt: skip
KEYS = ["kind", "engine", "port", "bind", "public_host", "root", "retention_days",
        "redact_phone", "default_agent", "account_sid", "api_base_url", "name", "model",
        "system_prompt", "first_message", "\"+15550001234\"", "voice", "x"]  # fmt: skip
SCALAR = (
    st.sampled_from(["echo", "twilio", "telnyx", "pipeline", "python:os:system", ""])
    | st.text(max_size=20)
).map(json.dumps) | st.sampled_from(["1", "-1", "0", "99999999999", "true", "1.5", "[]", "{}"])
VALUE = SCALAR | st.lists(SCALAR, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
LINE = st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(KEYS), VALUE)
SECTION = st.builds(
    lambda name, lines: f"[{name}]\n" + "\n".join(lines),
    st.sampled_from(SECTIONS),
    st.lists(LINE, max_size=5),
)
TOML = st.lists(SECTION, max_size=6).map("\n".join) | st.text(max_size=300)


def _check(text: str) -> None:
    try:
        config = parse_config(text, Path("/nonexistent/patterd.toml"), import_agents=False)
    except ConfigError as exc:
        assert exc.args and str(exc), "a ConfigError says what is wrong"
    else:
        assert isinstance(config, DaemonConfig)


@FAST
@given(TOML)
@example("[agents.echo]\nengine = " + "[" * 5000 + "]" * 5000)
@example("a = " + "{b = " * 2000 + "1" + "}" * 2000)
@example('[agents.echo]\nengine = "echo"\n[numbers]\n"+15550001234" = "nope"\n')
def test_config_text_never_crashes(text: str) -> None:
    _check(text)


@pytest.mark.slow
@LONG
@given(TOML)
def test_config_text_never_crashes_long(text: str) -> None:
    _check(text)
