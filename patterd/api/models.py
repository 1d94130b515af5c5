"""Request and response bodies of the control API, shared by server, client and OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from patterd.runtime import LiveCall

# The SDK's rule (patter_core.validation.require_e164): "+", then 7 to 15 digits.
E164_PATTERN = r"^\+[1-9]\d{6,14}$"
TRANSFER_PATTERN = r"^(\+[1-9]\d{6,14}|sips?:[^\s]+)$"
CREDENTIAL_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"
DTMF_PATTERN = r"^[0-9*#A-Dw]{1,64}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlaceCallRequest(_Body):
    to: str = Field(pattern=E164_PATTERN, description="E.164 number to dial")
    agent: str | None = Field(None, description="agent name from the config")
    first_message: str | None = Field(None, max_length=2000)


class TransferRequest(_Body):
    to: str = Field(pattern=TRANSFER_PATTERN, description="E.164 number or SIP URI")


class DtmfRequest(_Body):
    digits: str = Field(pattern=DTMF_PATTERN, description="digits; w waits 0.5 s")


class CredentialSetRequest(_Body):
    value: str = Field(min_length=1, max_length=8192)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[str] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorDetail


class Status(BaseModel):
    version: str
    pid: int
    uptime_s: float
    live_calls: int
    accepting: bool
    config_path: str
    socket: str
    event_position: int
    instance: str = ""
    """A fresh id at every daemon start: event positions only mean something within one."""
    carrier: str = ""
    public_host: str | None = None
    max_calls: int | None = None  # as the daemon started with it; None: no limit


class VersionInfo(BaseModel):
    version: str
    api: Literal["v1"] = "v1"


class LiveCalls(BaseModel):
    calls: list[LiveCall]


class PlacedCall(BaseModel):
    call_id: str


class CallPage(BaseModel):
    calls: list[dict[str, Any]]
    limit: int
    offset: int
    next_offset: int | None


class CallDetail(BaseModel):
    call: dict[str, Any]
    live: bool


class DayTotals(BaseModel):
    days: list[dict[str, Any]]


class CredentialName(BaseModel):
    name: str
    source: Literal["config", "env", "credentials_directory", "keyring"]


class CredentialList(BaseModel):
    credentials: list[CredentialName]


class Reloaded(BaseModel):
    reloaded: bool
    config_path: str


class Rebuilt(BaseModel):
    calls: int


class Ok(BaseModel):
    ok: bool = True


class EventFrame(BaseModel):
    """One WebSocket message: an event with its resume position, a gap marker, or a reset.

    ``reset`` (``pos`` 0, with the daemon's ``instance``) comes first when the
    requested ``since`` is not a position of this daemon: ahead of its last one, or
    from another ``instance`` (it restarted). The stream then replays from its start.
    """

    kind: Literal["event", "gap", "reset"]
    pos: int
    missed: int = 0
    event: dict[str, Any] | None = None
    instance: str | None = None
