"""The seam between the daemon and the SDK: what the control API may ask of a running Patter.

The daemon (config, socket, API, signals) is written against this Protocol
only; the SDK-backed implementation is plugged in by a factory named on the
command line (``--runtime module:factory``), so the API can be tested with a
runtime that publishes real events on a real EventBus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from patter_core.bus import EventBus
from patterd.config import DaemonConfig
from patterd.credentials import Credentials


class LiveCall(BaseModel):
    call_id: str
    direction: Literal["inbound", "outbound"]
    caller: str = ""
    callee: str = ""
    agent: str = ""
    state: str = "ringing"
    started_at: datetime


class CallNotFound(LookupError):
    """No live call (or stored call) with that id."""


class NotAccepting(RuntimeError):
    """The runtime is draining or otherwise not taking new calls."""


class AtCapacity(NotAccepting):
    """``max_calls`` calls are up; a new one waits until one ends."""


class RuntimeFailure(RuntimeError):
    """The carrier or SDK refused an operation; the message is safe to show."""


class UnknownAgent(RuntimeFailure):
    """The request named an agent the config does not declare (the caller's mistake)."""


@runtime_checkable
class CallStore(Protocol):
    """The queries the daemon needs from ``patter_core.store``; rows are plain JSON-able dicts."""

    def list_calls(
        self,
        limit: int = 50,
        offset: int = 0,
        *,
        direction: str | None = None,
        status: str | None = None,
        number: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[dict[str, Any]]: ...

    def get_call(self, call_id: str) -> dict[str, Any] | None: ...

    def totals_by_day(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Sequence[dict[str, Any]]: ...

    def rebuild(self) -> int: ...


@runtime_checkable
class Runtime(Protocol):
    """A running Patter: live calls, call control, the event bus and the store."""

    bus: EventBus
    store: CallStore

    async def start(self) -> None:
        """Begin serving (public server up, numbers answered)."""

    def live_calls(self) -> list[LiveCall]: ...

    async def place_call(self, to: str, agent: str | None, first_message: str | None) -> str:
        """Dial ``to``; returns the call id. Raises NotAccepting or RuntimeFailure."""

    async def hangup(self, call_id: str, *, reason: str = "hangup") -> None:
        """Raises CallNotFound."""

    async def transfer(self, call_id: str, to: str) -> None: ...

    async def send_dtmf(self, call_id: str, digits: str) -> None: ...

    def stop_accepting(self) -> None:
        """Refuse new calls (inbound and outbound) from now on; live calls go on."""

    async def reload_config(self, config: DaemonConfig) -> None:
        """Apply a new, already validated config."""

    async def aclose(self) -> None:
        """End whatever is left, flush the store, release resources."""


RuntimeFactory = Callable[[DaemonConfig, EventBus, Credentials], Runtime]
