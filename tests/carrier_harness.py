"""One Patter server wired to a simulated carrier, behind a small per-carrier adapter.

The parity suite speaks only to the adapter, so every scenario runs the same
way against Twilio and Telnyx; only wire details (which command means "dial",
how a webhook is forged) live here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from patter_core import EchoEngine, Patter, Telnyx, Twilio
from patter_core.audio.g711 import ulaw_decode
from patter_core.testing import SimulatedCall, SimulatedTelnyx, SimulatedTwilio, tone_for
from tests.twilio_harness import Rig

CALLER = "+15550007777"
NUMBER = "+15550001234"


class TwilioAdapter:
    name = "twilio"

    def __init__(self, sim: SimulatedTwilio) -> None:
        self.sim = sim

    async def inbound_call(self, from_: str = CALLER) -> SimulatedCall:
        return await self.sim.inbound_call(from_=from_, to=NUMBER)

    def tone(self, seconds: float) -> bytes:
        return tone_for("PCMU", 440, seconds)

    @staticmethod
    def samples(wire: bytes) -> np.ndarray:
        return ulaw_decode(wire).astype(np.float64)

    def dial_count(self) -> int:
        return len(self.sim.requests_of("create_call"))

    def dial(self) -> dict[str, Any]:
        form = self.sim.requests_of("create_call")[0]["form"]
        return {
            "amd": "MachineDetection" in form,
            "ring_timeout": form.get("Timeout"),
            "record": form.get("Record") == "true",
        }

    async def outbound_stream(self, call_id: str, phone: Patter) -> SimulatedCall:
        assert phone.server is not None
        record = phone.server.registry.get(call_id)
        assert record is not None
        return await self.sim.wait_stream(record.carrier_call_id)

    def transfers(self) -> list[str]:
        return [
            r["form"]["Twiml"]
            for r in self.sim.requests_of("update_call")
            if r["form"].get("Twiml", "").find("<Dial>") >= 0
        ]

    def hangups(self) -> int:
        return sum(
            1 for r in self.sim.requests_of("update_call") if r["form"].get("Status") == "completed"
        )

    def recordings_started(self) -> int:
        return len(self.sim.requests_of("create_recording"))

    async def unanswered(self, phone: Patter) -> str:
        """An outbound call the callee never picks up; returns our call id."""
        assert phone.server is not None
        record = phone.server.registry.new(
            direction="outbound", carrier="twilio", caller=NUMBER, callee="+15550005555"
        )
        phone.server.registry.bind_carrier_id(record, "CA" + "9" * 32)
        status, _ = await self.sim.post_webhook(
            self.sim.webhook_url("status", f"call_id={record.call_id}"),
            {"CallSid": "CA" + "9" * 32, "CallStatus": "no-answer", "CallDuration": "0"},
        )
        assert status == 204
        return record.call_id

    def forged_webhooks(self) -> dict[str, Callable[[], Awaitable[tuple[int, str]]]]:
        url = self.sim.webhook_url("voice")
        params = {"CallSid": "CA" + "1" * 32, "From": CALLER, "To": NUMBER}
        other = url.replace(self.sim.public_host, "evil.example")
        return {
            "wrong-signature": lambda: self.sim.post_webhook(url, params, signature="bm9wZQ=="),
            "missing-signature": lambda: self.sim.post_webhook(url, params, signature=""),
            "signed-for-another-host": lambda: self.sim.post_webhook(
                url, params, signature=self.sim.sign(other, params)
            ),
        }

    async def valid_webhook(self) -> int:
        params = {"CallSid": "CA" + "1" * 32, "From": CALLER, "To": NUMBER}
        return (await self.sim.post_webhook(self.sim.webhook_url("voice"), params))[0]


class TelnyxAdapter:
    name = "telnyx"

    def __init__(self, sim: SimulatedTelnyx, codec: str = "PCMU") -> None:
        self.sim = sim
        self.codec = codec

    async def inbound_call(self, from_: str = CALLER) -> SimulatedCall:
        offered = "L16,PCMU" if self.codec == "L16" else "PCMU,PCMA"
        return await self.sim.inbound_call(from_=from_, to=NUMBER, offered_codecs=offered)

    def tone(self, seconds: float) -> bytes:
        return tone_for(self.codec, 440, seconds)

    def samples(self, wire: bytes) -> np.ndarray:
        if self.codec == "L16":
            return np.frombuffer(wire, dtype=">i2").astype(np.float64)
        return ulaw_decode(wire).astype(np.float64)

    def dial_count(self) -> int:
        return len(self.sim.commands_of("dial"))

    def dial(self) -> dict[str, Any]:
        body = self.sim.commands_of("dial")[0]["body"]
        amd = body.get("answering_machine_detection", "disabled") != "disabled"
        timeout = body.get("timeout_secs")
        return {
            "amd": amd,
            "ring_timeout": None if timeout is None else str(timeout),
            "record": body.get("record") == "record-from-answer",
        }

    async def outbound_stream(self, call_id: str, phone: Patter) -> SimulatedCall:
        assert phone.server is not None
        record = phone.server.registry.get(call_id)
        assert record is not None
        return await self.sim.wait_stream(record.carrier_call_id)

    def transfers(self) -> list[str]:
        return [c["body"]["to"] for c in self.sim.commands_of("transfer")]

    def hangups(self) -> int:
        return len(self.sim.commands_of("hangup"))

    def recordings_started(self) -> int:
        return len(self.sim.commands_of("record_start"))

    async def unanswered(self, phone: Patter) -> str:
        """An outbound call the callee never picks up: Telnyx sends ``call.hangup``."""
        self.sim.amd_result = None
        assert phone.server is not None
        record = phone.server.registry.new(
            direction="outbound", carrier="telnyx", caller=NUMBER, callee="+15550005555"
        )
        ccid = self.sim._new_call(NUMBER, "+15550005555")
        phone.server.registry.bind_carrier_id(record, ccid)
        status, _ = await self.sim.post_call_event(
            ccid, "call.hangup", {"hangup_cause": "no_answer", "hangup_source": "callee"}
        )
        assert status == 200
        return record.call_id

    def forged_webhooks(self) -> dict[str, Callable[[], Awaitable[tuple[int, str]]]]:
        from nacl.signing import SigningKey

        body = self.sim.envelope("call.initiated", _initiated_payload())
        now = int(time.time())
        stranger = SigningKey.generate()
        return {
            "wrong-key": lambda: self.sim.post_raw(
                body, signature=self.sim.sign(body, now, stranger)
            ),
            "missing-signature": lambda: self.sim.post_raw(body, signature=""),
            # Stamped when sent, a minute past the window: the earlier forgeries take
            # time on a slow machine, and a stamp taken up front drifts back inside it.
            # The exact 300 s boundary is unit-tested in test_telnyx_webhooks.py.
            "older-than-5-minutes": lambda: self.sim.post_raw(
                body, timestamp=int(time.time()) - 360
            ),
            "from-the-future": lambda: self.sim.post_raw(body, timestamp=int(time.time()) + 360),
            "body-altered": lambda: self.sim.post_raw(
                body.replace(CALLER.encode(), b"+15559999999"),
                signature=self.sim.sign(body, now),
                timestamp=now,
            ),
        }

    async def valid_webhook(self) -> int:
        body = self.sim.envelope("call.initiated", _initiated_payload())
        return (await self.sim.post_raw(body))[0]


def _initiated_payload() -> dict[str, Any]:
    return {
        "call_control_id": "v3:forged-call",
        "call_leg_id": "leg",
        "call_session_id": "session",
        "connection_id": "1494404757140276705",
        "from": CALLER,
        "to": NUMBER,
        "direction": "incoming",
        "state": "parked",
    }


Adapter = TwilioAdapter | TelnyxAdapter


@dataclass(kw_only=True)
class CarrierRig(Rig):
    carrier: Adapter  # type: ignore[assignment]


@contextlib.asynccontextmanager
async def carrier_rig(
    kind: str,
    agent_factory: Any = None,
    *,
    serve_kwargs: dict[str, Any] | None = None,
    codec: str = "PCMU",
    phone_kwargs: dict[str, Any] | None = None,
    **sim_kwargs: Any,
) -> AsyncIterator[CarrierRig]:
    async with contextlib.AsyncExitStack() as stack:
        sim: Any
        adapter: Adapter
        if kind == "twilio":
            sim = await stack.enter_async_context(SimulatedTwilio(**sim_kwargs))
            carrier: Any = Twilio(
                account_sid=sim.account_sid, auth_token=sim.auth_token, api_base_url=sim.api_url
            )
            adapter = TwilioAdapter(sim)
        else:
            sim = await stack.enter_async_context(SimulatedTelnyx(**sim_kwargs))
            carrier = Telnyx(
                api_key=sim.api_key,
                connection_id=sim.connection_id,
                public_key=sim.public_key,
                api_base_url=sim.api_url,
            )
            adapter = TelnyxAdapter(sim, codec)
        phone = Patter(
            carrier=carrier,
            phone_number=NUMBER,
            webhook_url=sim.public_host,
            **(phone_kwargs or {}),
        )
        agent = agent_factory(phone) if agent_factory else phone.agent(engine=EchoEngine())
        events = phone.bus.subscribe(maxsize=100_000, name="test")
        task = asyncio.create_task(phone.serve(agent, port=0, **(serve_kwargs or {})))
        try:
            await asyncio.wait_for(asyncio.shield(phone.ready), 10)
            assert phone.server is not None
            sim.server_url = f"http://127.0.0.1:{phone.server.port}"
            yield CarrierRig(sim=sim, phone=phone, events=events, carrier=adapter)
        finally:
            await sim.settle()
            await phone.disconnect()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
