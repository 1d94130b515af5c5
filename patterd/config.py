"""The daemon's one TOML config file, parsed with tomllib and validated by pydantic.

Errors name the file, the line and the dotted key, because an operator editing
a config over SSH needs to know exactly where to look.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from patter_core.pricing import Pricing

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
CREDENTIAL_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


E164Number = Annotated[str, StringConstraints(pattern=E164.pattern)]


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir("patter")) / "patterd.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CarrierConfig(_Strict):
    """Which carrier and its non-secret options; secrets come from credentials."""

    kind: Literal["twilio", "telnyx"] = "twilio"
    api_base_url: str | None = None
    account_sid: str | None = None
    connection_id: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class ServerConfig(_Strict):
    """The public TCP server: webhooks and media only, never the control API."""

    bind: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_host: str | None = None
    metrics_port: int | None = Field(None, ge=1, le=65535)
    # Calls up at once before new ones hear busy; unset: no limit (bench/README.md has
    # what one core holds).
    max_calls: int | None = Field(None, ge=1)


class StoreConfig(_Strict):
    root: Path | None = None
    retention_days: int = Field(30, ge=0)
    redact_phone: Literal["full", "mask", "hash_only"] = "full"

    @field_validator("root")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None


class ProviderRef(_Strict):
    provider: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class PipelineConfig(_Strict):
    stt: ProviderRef
    llm: ProviderRef
    tts: ProviderRef

    @field_validator("stt", "llm", "tts", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"provider": v} if isinstance(v, str) else v


class WebhookTool(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    url: str = Field(pattern=r"^https?://")


class Guardrail(_Strict):
    name: str = Field(min_length=1)
    blocked_terms: list[str] = Field(min_length=1)
    replacement: str = "I'm sorry, I can't help with that."


class AgentConfig(_Strict):
    """Exactly one of ``engine``, ``pipeline`` or ``agent`` (a Python import path)."""

    engine: Literal["echo", "openai_realtime", "elevenlabs_convai"] | None = None
    pipeline: PipelineConfig | None = None
    agent: str | None = Field(None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    system_prompt: str = ""
    first_message: str = ""
    voice: str | None = None
    language: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    tools: list[WebhookTool] = Field(default_factory=list)
    guardrails: list[Guardrail] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_kind(self) -> AgentConfig:
        kinds = [k for k in ("engine", "pipeline", "agent") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "an agent needs exactly one of 'engine', 'pipeline' or 'agent'"
                f" (found {', '.join(kinds) if kinds else 'none'})"
            )
        return self


class TelemetryConfig(_Strict):
    """OpenTelemetry traces (needs ``pip install patter[otel]``); exporter set by OTEL_* env."""

    traces: bool = False


class DaemonConfig(_Strict):
    carrier: CarrierConfig = Field(default_factory=CarrierConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    pricing: dict[str, float] = Field(default_factory=dict)
    numbers: dict[E164Number, str] = Field(default_factory=dict)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    default_agent: str | None = None
    credentials: dict[str, str] = Field(default_factory=dict, repr=False)
    drain_grace_s: float = Field(30.0, ge=0)
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"

    @field_validator("pricing")
    @classmethod
    def _known_rates(cls, v: dict[str, float]) -> dict[str, float]:
        """Caught by check-config, not at start: the SDK refuses unknown rates."""
        Pricing.with_overrides(v)
        return v

    @field_validator("credentials")
    @classmethod
    def _credential_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not CREDENTIAL_NAME.match(name):
                raise ValueError(f"credential name {name!r} must look like OPENAI_API_KEY")
        return v

    def unknown_agents(self) -> list[tuple[tuple[str, ...], str]]:
        """Every reference to an agent that is not declared, as (key path, message):
        checked after the tables themselves, so each is reported at its own line."""
        problems: list[tuple[tuple[str, ...], str]] = []
        for number, agent in self.numbers.items():
            if agent not in self.agents:
                problems.append((("numbers", number), f"unknown agent {agent!r}"))
        if self.default_agent is not None and self.default_agent not in self.agents:
            problems.append(
                (("default_agent",), f"{self.default_agent!r} is not declared under [agents]")
            )
        return problems


class ConfigError(Exception):
    """One or more problems, each already formatted as ``file:line: key: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: Path, *, import_agents: bool = True) -> DaemonConfig:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    return parse_config(source, path, import_agents=import_agents)


def parse_config(source: str, path: Path, *, import_agents: bool = True) -> DaemonConfig:
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError([f"{where}: invalid TOML: {exc}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: invalid TOML: arrays or tables nested too deeply"]) from None
    try:
        config = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            key = _dotted(loc) or "(top level)"
            line = locate(source, loc)
            problems.append(f"{path}:{line}: {key}: {err['msg']}")
        raise ConfigError(problems) from None
    unknown = [
        f"{path}:{locate(source, loc)}: {_dotted(loc)}: {message}"
        for loc, message in config.unknown_agents()
    ]
    if unknown:
        raise ConfigError(unknown)
    if import_agents:
        check_python_agents(config, source, path)
    return config


def _toml_error_line(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            out += " (the key)"
        elif isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _split_key(text: str) -> list[str]:
    """Split a TOML dotted key (``agents."front desk".tools``) into parts."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|([A-Za-z0-9_+-]+)', text)
    return [a or b or c for a, b, c in parts]


def _key_line(lines: list[str], start: int, end: int, key: str) -> int | None:
    pattern = re.compile(
        r"^\s*(?:\""
        + re.escape(key)
        + r"\"|'"
        + re.escape(key)
        + r"'|"
        + re.escape(key)
        + r")\s*[=.]"
    )
    for i in range(start, end):
        if pattern.match(lines[i]):
            return i + 1
    return None


def locate(source: str, loc: tuple[Any, ...]) -> int:
    """Best line number for a pydantic error location in TOML ``source`` (1-based).

    Finds the deepest table header that is a prefix of ``loc`` (counting
    ``[[array]]`` occurrences for list indices), then the key inside that
    table. Falls back to the first line that assigns the last key, then 1.
    """
    lines = source.splitlines()
    headers: list[tuple[int, list[str], bool]] = []
    for i, raw in enumerate(lines):
        m = _HEADER.match(raw)
        if m:
            headers.append((i, _split_key(m.group(2)), m.group(1) == "[["))
    path = [p for p in loc]
    best: tuple[int, int, int] | None = None  # (consumed parts, header line, section end)
    for idx, (line_no, name, is_array) in enumerate(headers):
        consumed = _match_header(path, name, is_array, headers, idx)
        if consumed is not None and (best is None or consumed > best[0]):
            end = headers[idx + 1][0] if idx + 1 < len(headers) else len(lines)
            best = (consumed, line_no, end)
    if best is not None:
        consumed, line_no, end = best
        rest = [p for p in path[consumed:] if isinstance(p, str)]
        if rest:
            found = _key_line(lines, line_no + 1, end, rest[0])
            if found:
                return found
        return line_no + 1
    first_header = headers[0][0] if headers else len(lines)
    strs = [p for p in path if isinstance(p, str)]
    if strs:
        found = _key_line(lines, 0, first_header, strs[0])
        if found:
            return found
        for key in reversed(strs):
            found = _key_line(lines, 0, len(lines), key)
            if found:
                return found
    return 1


def _match_header(
    path: list[Any],
    name: list[str],
    is_array: bool,
    headers: list[tuple[int, list[str], bool]],
    idx: int,
) -> int | None:
    """How many parts of ``path`` the header at ``idx`` accounts for, or None."""
    consumed = 0
    for part in name:
        if consumed >= len(path) or str(path[consumed]) != part:
            return None
        consumed += 1
    if is_array and consumed < len(path) and isinstance(path[consumed], int):
        occurrence = sum(1 for h in headers[:idx] if h[1] == name and h[2])
        if occurrence != path[consumed]:
            return None
        consumed += 1
    return consumed


def resolve_python_agent(spec: str) -> object:
    """Import ``module:attribute``; raises ConfigError with a clear message if missing."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            [f"agent {spec!r}: cannot import module {module_name!r}: {exc}"]
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError([f"agent {spec!r}: module {module_name!r} has no {attr!r}"]) from None


def check_python_agents(config: DaemonConfig, source: str, path: Path) -> None:
    problems: list[str] = []
    for name, agent in config.agents.items():
        if agent.agent is None:
            continue
        try:
            resolve_python_agent(agent.agent)
        except ConfigError as exc:
            line = locate(source, ("agents", name, "agent"))
            problems.extend(f"{path}:{line}: agents.{name}.agent: {p}" for p in exc.problems)
    if problems:
        raise ConfigError(problems)
