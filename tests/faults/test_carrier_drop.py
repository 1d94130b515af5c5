"""The carrier drops the media socket mid-call: the call ends as interrupted, is
recorded so, its token can't be replayed to reattach, and the next call works."""

from __future__ import annotations

from pathlib import Path

from patter_core.store import CallStore
from patter_core.testing import tone_mulaw
from tests.twilio_harness import twilio_rig


async def test_dropped_media_socket_is_recorded_and_its_token_is_dead(tmp_path: Path) -> None:
    async with twilio_rig(persist=str(tmp_path)) as rig:
        server = rig.phone.server
        assert server is not None and rig.sim._session is not None
        call = await rig.sim.inbound_call()
        started = await rig.next_event("call.started")
        record = next(iter(server.registry.live()))
        stolen = f"/ws/stream/{record.call_id}/{record.stream_token}"
        tone = tone_mulaw(440, 0.2)
        call.say(tone)
        await call.wait_heard(len(tone))
        await call.drop()
        ended = await rig.next_event("call.ended")
        assert ended.reason == "interrupted"  # type: ignore[attr-defined]
        assert not server.registry.live()
        # Whoever holds the ended call's token cannot attach a socket to it.
        ws = await rig.sim._session.ws_connect(rig.sim.server_url.replace("http", "ws") + stolen)
        msg = await ws.receive(timeout=5)
        assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING") and ws.close_code == 1008
        await ws.close()
        assert server.rejected_streams == 1
        # The next call is served end to end.
        nxt = await rig.sim.inbound_call()
        await rig.next_event("call.answered")
        nxt.say(tone)
        await nxt.wait_heard(len(tone))
        await nxt.hangup()
        assert (await rig.next_event("call.ended")).reason == "hangup"  # type: ignore[attr-defined]
    store = CallStore(tmp_path)
    try:
        row = store.get_call(started.call_id)
        assert row is not None and row["status"] != "live" and row["reason"] == "interrupted"
        assert store.hydrate() == 0
    finally:
        store.close()
