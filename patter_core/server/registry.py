"""Calls this server knows about: the only ones whose media sockets it accepts."""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

# Ended calls are kept a while so late callbacks (recording, status) still
# find their call, then forgotten so memory stays flat on a busy server.
ENDED_MEMORY = 2_000


@dataclass(slots=True)
class CallRecord:
    call_id: str
    direction: Literal["inbound", "outbound"]
    carrier: str
    caller: str = ""
    callee: str = ""
    carrier_call_id: str = ""
    stream_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    state: Literal["ringing", "streaming", "ended"] = "ringing"
    created: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    answered: bool = False
    started_published: bool = False
    ended_published: bool = False
    stream_opened: bool = False
    amd_verdict: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    session: Any = None  # the running CallSession, when there is one

    def token_matches(self, candidate: str) -> bool:
        return hmac.compare_digest(self.stream_token.encode(), candidate.encode())


class CallRegistry:
    def __init__(self) -> None:
        self._calls: dict[str, CallRecord] = {}
        self._by_carrier_id: dict[str, str] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()

    def new(
        self,
        *,
        direction: Literal["inbound", "outbound"],
        carrier: str,
        caller: str = "",
        callee: str = "",
        carrier_call_id: str = "",
        call_id: str | None = None,
    ) -> CallRecord:
        record = CallRecord(
            call_id=call_id or uuid.uuid4().hex,
            direction=direction,
            carrier=carrier,
            caller=caller,
            callee=callee,
            carrier_call_id=carrier_call_id,
        )
        self._calls[record.call_id] = record
        if carrier_call_id:
            self._by_carrier_id[carrier_call_id] = record.call_id
        return record

    def get(self, call_id: str) -> CallRecord | None:
        return self._calls.get(call_id)

    def by_carrier_id(self, carrier_call_id: str) -> CallRecord | None:
        call_id = self._by_carrier_id.get(carrier_call_id)
        return None if call_id is None else self._calls.get(call_id)

    def bind_carrier_id(self, record: CallRecord, carrier_call_id: str) -> None:
        record.carrier_call_id = carrier_call_id
        self._by_carrier_id[carrier_call_id] = record.call_id

    def mark_ended(self, record: CallRecord) -> None:
        record.state = "ended"
        record.session = None
        self._ended[record.call_id] = None
        while len(self._ended) > ENDED_MEMORY:
            old, _ = self._ended.popitem(last=False)
            gone = self._calls.pop(old, None)
            if gone is not None:
                self._by_carrier_id.pop(gone.carrier_call_id, None)

    def live(self) -> list[CallRecord]:
        return [r for r in self._calls.values() if r.state != "ended"]

    def live_count(self) -> int:
        return len(self._calls) - len(self._ended)

    def __len__(self) -> int:
        return len(self._calls)
