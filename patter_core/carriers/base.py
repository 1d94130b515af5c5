"""The two seams every carrier implements: ``CarrierLeg`` and ``CarrierControl``.

The leg keeps audio in the carrier's wire format (``wire_format``) instead of
decoding it, so the session can hand µ-law straight to a µ-law engine and
convert exactly once everywhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from patter_core.audio.formats import AudioFormat


@dataclass(frozen=True, slots=True)
class LegStarted:
    """The media stream is up; ``stream_id`` is the carrier's id for it."""

    stream_id: str
    carrier_call_id: str
    custom: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class LegAudio:
    """Caller audio in the leg's wire format; ``timestamp_ms`` from stream start.

    Not frozen, unlike the other events: one is made per 20 ms frame, and a
    frozen dataclass's ``__init__`` costs twice as much (``object.__setattr__``
    per field). Treat it as read-only.
    """

    payload: bytes
    timestamp_ms: float


@dataclass(frozen=True, slots=True)
class LegDtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class LegMark:
    """The carrier played everything queued before the mark called ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class LegStopped:
    """The stream ended. ``reason``: ``hangup`` (carrier said stop) or ``dropped``."""

    reason: Literal["hangup", "dropped", "closed"]
    detail: str = ""


LegEvent = LegStarted | LegAudio | LegDtmf | LegMark | LegStopped


@runtime_checkable
class CarrierLeg(Protocol):
    """One call's media stream, whatever carrier it comes from."""

    @property
    def call_id(self) -> str: ...

    @property
    def wire_format(self) -> AudioFormat: ...

    def events(self) -> AsyncIterator[LegEvent]:
        """Inbound events until (and including) one ``LegStopped``."""
        ...

    async def send_audio(self, payload: bytes) -> None:
        """Queue agent audio (wire format, any length); the leg cuts and paces it."""

    async def send_mark(self, name: str) -> None:
        """Queue a mark after the audio sent so far; it comes back as ``LegMark``."""

    async def clear(self) -> None:
        """Drop queued, unplayed audio at the carrier (barge-in)."""

    async def close(self) -> None:
        """Close the stream from our side."""


@dataclass(frozen=True, slots=True)
class PlacedCall:
    carrier_call_id: str
    status: str = "queued"


class CarrierError(Exception):
    """A carrier API refused or failed a request. Never carries credentials."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | int | None = None,
        carrier: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.carrier = carrier


class CarrierControl(Protocol):
    """The REST side of a carrier. Every method has a timeout and raises CarrierError."""

    name: str
    # Whether closing our media stream ends the call (Twilio: nothing follows the
    # stream in its TwiML) or leaves it up until hung up through the API (Telnyx).
    stream_end_ends_call: bool

    async def place_call(
        self,
        *,
        to: str,
        from_: str,
        call_id: str,
        webhook_host: str,
        machine_detection: bool = True,
        ring_timeout: int | None = 25,
        record: bool = False,
        stream_url: str = "",
    ) -> PlacedCall:
        """Dial. ``stream_url`` is for carriers that start the media stream at dial
        (Telnyx); carriers that ask for it in a webhook answer (Twilio) ignore it."""
        ...

    async def hangup(self, carrier_call_id: str) -> None: ...

    async def transfer(self, carrier_call_id: str, to: str) -> None: ...

    async def start_recording(self, carrier_call_id: str, *, webhook_host: str) -> None: ...

    async def send_dtmf(self, carrier_call_id: str, digits: str) -> None: ...

    async def configure_number(self, phone_number: str, webhook_host: str) -> None: ...

    async def close(self) -> None: ...
