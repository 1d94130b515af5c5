"""A local WebSocket server that behaves like the OpenAI Realtime API (protocols.md §7).

It checks ``Authorization: Bearer``, answers ``session.update`` with
``session.updated``, runs a toy server VAD over appended audio (any
non-silent chunk is speech; a silent chunk after speech ends the turn), and
answers each turn with the next scripted :class:`Reply`: audio deltas in the
negotiated format interleaved with transcript deltas, or a function call.
Event names follow the GA API, or the beta API when the client sent
``OpenAI-Beta: realtime=v1``. It honours ``response.cancel`` and
``conversation.item.truncate`` (rejecting an ``audio_end_ms`` past the audio
it sent) and records every connection so tests can assert what arrived.

Failure modes: refuse the key (HTTP 401 at the handshake, or an ``error``
event), rate limit, drop the socket mid-reply, stall, delay the handshake.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web


@dataclass
class Reply:
    text: str = "Hello, how can I help?"
    audio_ms: int = 400
    tool: str | None = None  # reply with a function call instead of speech
    arguments: dict[str, Any] = field(default_factory=dict)
    pace_s: float = 0.0  # sleep between 100 ms audio chunks
    drop_after_chunks: int | None = None  # close the socket mid-reply
    stall_after_chunks: int | None = None  # go silent mid-reply (socket stays open)
    rate_limited: bool = False  # an error event instead of the reply


@dataclass
class Conn:
    headers: dict[str, str]
    beta: bool
    session: dict[str, Any] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)  # conversation.item.create
    truncations: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    responses: list[str] = field(default_factory=list)  # status of each response.done
    errors: list[dict[str, Any]] = field(default_factory=list)  # error events sent
    closed: bool = False


class FakeOpenAIRealtime:
    def __init__(self, *, key: str = "sk-test-realtime") -> None:
        self.key = key
        self.replies: list[Reply] = []
        self.caller_says: list[str] = []
        self.auth_failure: Literal["handshake", "event"] = "handshake"
        self.connect_delay_s = 0.0
        self.stall_session = False  # never answer session.update
        self.conns: list[Conn] = []
        self._seq = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application()
        self.app.router.add_get("/v1/realtime", self._handle)

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    async def until(self, predicate: Callable[[FakeOpenAIRealtime], bool]) -> None:
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()

    def _touch(self) -> None:
        self._changed.set()

    async def __aenter__(self) -> FakeOpenAIRealtime:
        self._runner = web.AppRunner(self.app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- connection ------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.connect_delay_s:
            await asyncio.sleep(self.connect_delay_s)
        authorized = request.headers.get("Authorization") == f"Bearer {self.key}"
        if not authorized and self.auth_failure == "handshake":
            return web.json_response(
                {"error": {"type": "invalid_request_error", "code": "invalid_api_key"}},
                status=401,
            )
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(
            headers=dict(request.headers),
            beta=request.headers.get("OpenAI-Beta") == "realtime=v1",
        )
        self.conns.append(conn)
        self._touch()
        session = _Session(self, ws, conn)
        try:
            if not authorized:
                await session.error("invalid_request_error", "invalid_api_key", "Incorrect API key")
                await ws.close()
                return ws
            await session.run()
        finally:
            conn.closed = True
            self._touch()
        return ws

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if self.replies else Reply()

    def next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._seq}"


class _Session:
    """One client connection: the protocol state machine."""

    def __init__(self, fake: FakeOpenAIRealtime, ws: web.WebSocketResponse, conn: Conn) -> None:
        self.fake = fake
        self.ws = ws
        self.conn = conn
        self.fmt = "pcm16"
        self.speaking = False
        self.response: asyncio.Task[None] | None = None
        self.audio_sent: dict[str, int] = {}  # item_id → ms
        self.known_items: set[str] = set()
        self.dropped = False

    def name(self, ga: str, beta: str) -> str:
        return beta if self.conn.beta else ga

    async def send(self, event: dict[str, Any]) -> None:
        event.setdefault("event_id", self.fake.next_id("event"))
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(event))

    async def error(self, kind: str, code: str, message: str) -> None:
        err = {"type": kind, "code": code, "message": message, "param": None, "event_id": None}
        self.conn.errors.append(err)
        await self.send({"type": "error", "error": err})

    async def run(self) -> None:
        await self.send({"type": "session.created", "session": {"id": self.fake.next_id("sess")}})
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                self.conn.received.append(event)
                self.fake._touch()
                await self.on_event(event)
                if self.dropped:
                    break
        finally:
            if self.response is not None:
                self.response.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await self.response

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            self.conn.session = event["session"]
            self.fmt = self.format_of(event["session"])
            if not self.fake.stall_session:
                await self.send({"type": "session.updated", "session": event["session"]})
        elif kind == "input_audio_buffer.append":
            await self.on_audio(base64.b64decode(event["audio"]))
        elif kind == "conversation.item.create":
            item = dict(event["item"])
            item.setdefault("id", self.fake.next_id("item"))
            self.known_items.add(item["id"])
            self.conn.items.append(item)
            added = self.name("conversation.item.added", "conversation.item.created")
            await self.send({"type": added, "item": item})
        elif kind == "response.create":
            await self.start_response(event.get("response") or {})
        elif kind == "response.cancel":
            if self.response is None or self.response.done():
                await self.error("invalid_request_error", "response_cancel_not_active", "none")
            else:
                self.response.cancel()
        elif kind == "conversation.item.truncate":
            await self.on_truncate(event)

    @staticmethod
    def format_of(session: dict[str, Any]) -> str:
        if "audio" in session:
            fmt = session["audio"]["input"]["format"]["type"]
            return {"audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}.get(fmt, "pcm16")
        return str(session.get("input_audio_format", "pcm16"))

    def bytes_per_ms(self) -> int:
        return 8 if self.fmt.startswith("g711") else 48

    def silence(self) -> int:
        return {"g711_ulaw": 0xFF, "g711_alaw": 0xD5}.get(self.fmt, 0)

    # --- toy server VAD --------------------------------------------------------------

    async def on_audio(self, audio: bytes) -> None:
        self.conn.audio_bytes += len(audio)
        voiced = any(b != self.silence() for b in audio)
        if voiced and not self.speaking:
            self.speaking = True
            await self.send(
                {
                    "type": "input_audio_buffer.speech_started",
                    "audio_start_ms": 0,
                    "item_id": self.fake.next_id("item"),
                }
            )
        elif not voiced and self.speaking:
            self.speaking = False
            item_id = self.fake.next_id("item")
            await self.send(
                {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 0, "item_id": item_id}
            )
            await self.send({"type": "input_audio_buffer.committed", "item_id": item_id})
            said = self.fake.caller_says.pop(0) if self.fake.caller_says else "Hello there"
            half = len(said) // 2
            for delta in (said[:half], said[half:]):
                await self.send(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item_id,
                        "content_index": 0,
                        "delta": delta,
                    }
                )
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": said,
                    "usage": {"type": "duration", "seconds": 1.5},
                }
            )
            session = self.conn.session
            detect = (
                session["audio"]["input"].get("turn_detection")
                if "audio" in session
                else session.get("turn_detection")
            ) or {}
            if detect.get("create_response", True):
                await self.start_response({})

    # --- responses -------------------------------------------------------------------

    async def start_response(self, params: dict[str, Any]) -> None:
        if self.response is not None and not self.response.done():
            await self.error(
                "invalid_request_error",
                "conversation_already_has_active_response",
                "active response in progress",
            )
            return
        reply = self.fake.next_reply()
        match = re.search(
            r'word for word, and nothing else: (".*")$', params.get("instructions", "")
        )
        if match:
            reply = Reply(text=json.loads(match.group(1)), audio_ms=reply.audio_ms)
        self.response = asyncio.create_task(self.respond(reply))

    async def respond(self, reply: Reply) -> None:
        rid = self.fake.next_id("resp")
        await self.send(
            {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}
        )
        if reply.rate_limited:
            await self.error("rate_limit_error", "rate_limit_exceeded", "Rate limit reached")
            return
        audio_ms = 0
        status = "completed"
        try:
            if reply.tool is not None:
                await self.function_call(rid, reply)
            else:
                audio_ms = await self.speak(rid, reply)
        except asyncio.CancelledError:
            status = "cancelled"
        if self.dropped:
            return
        self.conn.responses.append(status)
        self.fake._touch()
        words = max(len(reply.text.split()), 1)
        details: dict[str, Any] = {"text_tokens": 150, "audio_tokens": 50, "cached_tokens": 64}
        if not self.conn.beta:
            details["cached_tokens_details"] = {"text_tokens": 64, "audio_tokens": 0}
        done = {
            "id": rid,
            "status": status,
            "status_details": {"type": status, "reason": "client_cancelled"}
            if status == "cancelled"
            else None,
            "output": [],
            "usage": {
                "total_tokens": 200 + words + audio_ms // 50,
                "input_tokens": 200,
                "output_tokens": words + audio_ms // 50,
                "input_token_details": details,
                "output_token_details": {"text_tokens": words, "audio_tokens": audio_ms // 50},
            },
        }
        await self.send({"type": "response.done", "response": done})

    async def function_call(self, rid: str, reply: Reply) -> None:
        item_id, call_id = self.fake.next_id("item"), self.fake.next_id("call")
        args = json.dumps(reply.arguments)
        item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": reply.tool}
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": item,
            }
        )
        base = {"response_id": rid, "item_id": item_id, "output_index": 0, "call_id": call_id}
        await self.send({"type": "response.function_call_arguments.delta", **base, "delta": args})
        done = {"type": "response.function_call_arguments.done", **base, "arguments": args}
        if not self.conn.beta:
            done["name"] = reply.tool
        await self.send(done)
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": 0,
                "item": {**item, "arguments": args, "status": "completed"},
            }
        )

    async def speak(self, rid: str, reply: Reply) -> int:
        item_id = self.fake.next_id("item")
        self.known_items.add(item_id)
        self.audio_sent[item_id] = 0
        item = {"id": item_id, "type": "message", "role": "assistant", "content": []}
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": item,
            }
        )
        base = {"response_id": rid, "item_id": item_id, "output_index": 0, "content_index": 0}
        words = reply.text.split(" ")
        chunks = max(reply.audio_ms // 100, 1)
        audio_event = self.name("response.output_audio.delta", "response.audio.delta")
        text_event = self.name(
            "response.output_audio_transcript.delta", "response.audio_transcript.delta"
        )
        for i in range(chunks):
            if reply.drop_after_chunks is not None and i == reply.drop_after_chunks:
                self.dropped = True
                await self.ws.close()
                raise asyncio.CancelledError
            if reply.stall_after_chunks is not None and i == reply.stall_after_chunks:
                await asyncio.Event().wait()
            payload = bytes([0x55]) * (100 * self.bytes_per_ms())
            await self.send(
                {"type": audio_event, **base, "delta": base64.b64encode(payload).decode()}
            )
            self.audio_sent[item_id] += 100
            share = words[i * len(words) // chunks : (i + 1) * len(words) // chunks]
            if share:
                lead = " " if i * len(words) // chunks else ""
                await self.send({"type": text_event, **base, "delta": lead + " ".join(share)})
            await asyncio.sleep(reply.pace_s)
        await self.send(
            {"type": self.name("response.output_audio.done", "response.audio.done"), **base}
        )
        await self.send(
            {
                "type": self.name(
                    "response.output_audio_transcript.done", "response.audio_transcript.done"
                ),
                **base,
                "transcript": reply.text,
            }
        )
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": 0,
                "item": {**item, "status": "completed"},
            }
        )
        return self.audio_sent[item_id]

    async def on_truncate(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        end = event.get("audio_end_ms")
        if item_id not in self.audio_sent:
            await self.error("invalid_request_error", "item_not_found", "no such item")
            return
        if not isinstance(end, int) or end < 0 or end > self.audio_sent[item_id]:
            await self.error(
                "invalid_request_error", "invalid_value", "audio_end_ms is past the item's audio"
            )
            return
        self.conn.truncations.append(event)
        self.fake._touch()
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": event.get("content_index", 0),
                "audio_end_ms": end,
            }
        )
