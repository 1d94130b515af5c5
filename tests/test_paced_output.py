"""PacedOutput: what goes out in which message, and in what order, on the real clock."""

from __future__ import annotations

import asyncio

from patter_core.audio.formats import MULAW_8K
from patter_core.carriers.media import DEFAULT_LEAD_MS, MAX_CHUNK_MS, PacedOutput

FRAME = MULAW_8K.bytes_for_ms(20)
CHUNK = MULAW_8K.bytes_for_ms(MAX_CHUNK_MS)


class Wire:
    """The carrier side: every message in order, ``("media", bytes)`` or ``("mark", name)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | str]] = []

    async def media(self, payload: bytes) -> None:
        self.sent.append(("media", payload))

    async def mark(self, name: str) -> None:
        self.sent.append(("mark", name))

    def media_sizes(self) -> list[int]:
        return [len(p) for kind, p in self.sent if kind == "media"]

    def audio(self) -> bytes:
        return b"".join(p for kind, p in self.sent if kind == "media")  # type: ignore[misc]


def audio(ms: int, start: int = 0) -> bytes:
    n = MULAW_8K.bytes_for_ms(ms)
    return bytes((start + i) % 251 for i in range(n))


async def until_sent(wire: Wire, n_bytes: int, timeout: float = 5.0, mark: str = "") -> None:
    """Until ``n_bytes`` of audio (and the mark ``mark``, if given) went out."""
    async with asyncio.timeout(timeout):
        while len(wire.audio()) < n_bytes or (mark and ("mark", mark) not in wire.sent):
            await asyncio.sleep(0.01)


async def test_a_reply_faster_than_real_time_goes_out_in_100_ms_messages_with_its_marks():
    wire = Wire()
    out = PacedOutput(MULAW_8K, wire.media, wire.mark)
    reply = audio(1000)
    # As the session sends a reply: 100 ms pieces, a mark after each.
    for i in range(0, len(reply), CHUNK):
        await out.push_audio(reply[i : i + CHUNK])
        await out.push_mark(f"m{i // CHUNK}")
    # Only the lead (plus the message that crossed it) went out at once; the rest is paced.
    assert len(wire.audio()) <= MULAW_8K.bytes_for_ms(DEFAULT_LEAD_MS) + CHUNK
    await until_sent(wire, len(reply), mark="m9")
    await out.close()
    assert wire.audio() == reply
    assert wire.media_sizes() == [CHUNK] * 10, "ten messages, not fifty 20 ms ones"
    # Each mark follows exactly the audio sent before it.
    heard = 0
    for kind, item in wire.sent:
        if kind == "media":
            heard += len(item)
        else:
            assert heard == (int(str(item)[1:]) + 1) * CHUNK, item


async def test_one_long_push_is_cut_into_whole_frames_of_at_most_100_ms():
    wire = Wire()
    out = PacedOutput(MULAW_8K, wire.media, wire.mark)
    reply = audio(730)  # 36.5 frames: the half frame waits for more audio or a mark
    await out.push_audio(reply)
    await until_sent(wire, len(reply) - FRAME // 2)
    await out.push_mark("end")
    await until_sent(wire, len(reply), mark="end")
    await out.close()
    sizes = wire.media_sizes()
    assert wire.audio() == reply
    assert all(s <= CHUNK for s in sizes) and all(s % FRAME == 0 for s in sizes[:-1])
    assert sizes[-1] == FRAME // 2 and wire.sent[-1] == ("mark", "end")
    assert len(sizes) <= 9  # 730 ms in at most 100 ms messages, plus the tail


async def test_live_audio_arriving_in_real_time_still_goes_out_frame_by_frame():
    """The echo and a streaming engine send 20 ms at a time: each is sent as it comes."""
    wire = Wire()
    out = PacedOutput(MULAW_8K, wire.media, wire.mark)
    for k in range(5):
        await out.push_audio(audio(20, k))
        assert wire.media_sizes() == [FRAME] * (k + 1), "sent at once, not held to be joined"
    await out.close()


async def test_queued_frames_join_but_never_across_a_mark():
    wire = Wire()
    out = PacedOutput(MULAW_8K, wire.media, wire.mark, lead_ms=0)
    await out.push_audio(audio(20))  # the first goes out; the lead is spent
    for k in range(3):
        await out.push_audio(audio(20, k + 1))  # queued behind it
    await out.push_mark("a")
    await out.push_audio(audio(40, 9))
    await until_sent(wire, FRAME * 6, mark="a")
    await out.close()
    assert [(k, p if k == "mark" else len(p)) for k, p in wire.sent] == [
        ("media", FRAME),
        ("media", 3 * FRAME),
        ("mark", "a"),
        ("media", 2 * FRAME),
    ]
