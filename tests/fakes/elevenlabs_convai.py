"""A local server that behaves like ElevenLabs Conversational AI (protocols.md §8).

HTTP ``GET /v1/convai/conversation/get-signed-url`` checks ``xi-api-key`` and
hands out a one-time signed WebSocket URL; the WebSocket at
``/v1/convai/conversation`` accepts it (or no signature for a public agent),
waits for ``conversation_initiation_client_data``, answers with
``conversation_initiation_metadata`` (the agent's audio formats), speaks the
first message, pings, and runs a toy turn detector over ``user_audio_chunk``
(non-silent audio is speech; silence after speech ends the turn). Each turn
gets a ``user_transcript`` and the next scripted :class:`Reply`: an
``agent_response`` plus ``audio`` events, or a ``client_tool_call`` whose
``client_tool_result`` is awaited. Caller speech during a reply produces an
``interruption`` and an ``agent_response_correction``.

Failure modes: refuse the key (401), rate limit (429), drop the socket
mid-reply, stall (never send the metadata).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

SILENCE = {"ulaw_8000": 0xFF}


@dataclass
class Reply:
    text: str = "Sure, I can help with that."
    audio_ms: int = 400
    tool: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    pace_s: float = 0.0
    drop_after_chunks: int | None = None


@dataclass
class Conn:
    query: dict[str, str]
    initiation: dict[str, Any] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    pongs: list[Any] = field(default_factory=list)
    tool_results: list[dict[str, Any]] = field(default_factory=list)
    contextual_updates: list[str] = field(default_factory=list)
    user_messages: list[str] = field(default_factory=list)
    audio_bytes: int = 0
    closed: bool = False


class FakeElevenLabsConvAI:
    def __init__(self, *, key: str = "xi-test-key", agent_id: str = "agent_test") -> None:
        self.key = key
        self.agent_id = agent_id
        self.public = False  # a public agent needs no signature
        self.input_format = "ulaw_8000"
        self.output_format = "ulaw_8000"
        self.first_message = "Hello! How can I help?"
        self.replies: list[Reply] = []
        self.caller_says: list[str] = []
        self.rate_limited = False
        self.stall = False
        self.ping_every_s = 0.05
        self.signed_requests: list[dict[str, str]] = []
        self.conns: list[Conn] = []
        self._signatures: set[str] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application()
        self.app.router.add_get("/v1/convai/conversation/get-signed-url", self._signed_url)
        self.app.router.add_get("/v1/convai/conversation", self._ws)

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/convai/conversation"

    async def until(self, predicate: Callable[[FakeElevenLabsConvAI], bool]) -> None:
        while not predicate(self):
            self._changed.clear()
            await self._changed.wait()

    def touch(self) -> None:
        self._changed.set()

    async def __aenter__(self) -> FakeElevenLabsConvAI:
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

    async def _signed_url(self, request: web.Request) -> web.Response:
        self.signed_requests.append(dict(request.headers))
        if request.headers.get("xi-api-key") != self.key:
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
                status=401,
            )
        if self.rate_limited:
            return web.json_response({"detail": {"status": "too_many_requests"}}, status=429)
        if request.query.get("agent_id") != self.agent_id:
            return web.json_response({"detail": {"status": "agent_not_found"}}, status=404)
        token = secrets.token_hex(8)
        self._signatures.add(token)
        url = f"{self.base_url}?agent_id={self.agent_id}&conversation_signature={token}"
        return web.json_response({"signed_url": url})

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        signature = query.get("conversation_signature", "")
        if query.get("agent_id") != self.agent_id:
            return web.Response(status=404)
        if not self.public:
            if signature not in self._signatures:
                return web.Response(status=403)
            self._signatures.discard(signature)  # one use
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Conn(query=query)
        self.conns.append(conn)
        self.touch()
        try:
            await _Conversation(self, ws, conn).run()
        finally:
            conn.closed = True
            self.touch()
        return ws


class _Conversation:
    def __init__(self, fake: FakeElevenLabsConvAI, ws: web.WebSocketResponse, conn: Conn) -> None:
        self.fake = fake
        self.ws = ws
        self.conn = conn
        self.event_id = 0
        self.speaking = False
        self.reply: asyncio.Task[None] | None = None
        self.spoken_words: list[str] = []
        self.reply_text = ""
        self.tool_results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.dropped = False

    def next_id(self) -> int:
        self.event_id += 1
        return self.event_id

    async def send(self, event: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(event))

    async def run(self) -> None:
        first = await self.ws.receive(timeout=5)
        if first.type != WSMsgType.TEXT:
            return
        init = json.loads(first.data)
        if init.get("type") != "conversation_initiation_client_data":
            await self.ws.close(code=1008, message=b"expected conversation_initiation_client_data")
            return
        self.conn.initiation = init
        self.fake.touch()
        if self.fake.stall:
            await asyncio.Event().wait()
        await self.send(
            {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    "conversation_id": f"conv_{len(self.fake.conns)}",
                    "agent_output_audio_format": self.fake.output_format,
                    "user_input_audio_format": self.fake.input_format,
                },
            }
        )
        agent = (init.get("conversation_config_override") or {}).get("agent") or {}
        greeting = agent.get("first_message", self.fake.first_message)
        if greeting:
            self.start_reply(Reply(text=greeting))
        pinger = asyncio.create_task(self.ping())
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                event = json.loads(msg.data)
                self.conn.received.append(event)
                self.fake.touch()
                await self.on_event(event)
        finally:
            pinger.cancel()
            for task in (pinger, self.reply):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                        await task

    async def ping(self) -> None:
        while not self.ws.closed:
            await asyncio.sleep(self.fake.ping_every_s)
            await self.send(
                {"type": "ping", "ping_event": {"event_id": self.next_id(), "ping_ms": 12}}
            )

    async def on_event(self, event: dict[str, Any]) -> None:
        if "user_audio_chunk" in event:
            await self.on_audio(base64.b64decode(event["user_audio_chunk"]))
            return
        kind = event.get("type")
        if kind == "pong":
            self.conn.pongs.append(event.get("event_id"))
        elif kind == "client_tool_result":
            self.conn.tool_results.append(event)
            future = self.tool_results.pop(str(event.get("tool_call_id")), None)
            if future is not None and not future.done():
                future.set_result(event)
        elif kind == "contextual_update":
            self.conn.contextual_updates.append(str(event.get("text")))
        elif kind == "user_message":
            text = str(event.get("text"))
            self.conn.user_messages.append(text)
            match = re.search(r'word for word, and nothing else: (".*")\)$', text)
            reply = Reply(text=json.loads(match.group(1))) if match else self.next_reply()
            self.start_reply(reply)

    def next_reply(self) -> Reply:
        return self.fake.replies.pop(0) if self.fake.replies else Reply()

    async def on_audio(self, audio: bytes) -> None:
        self.conn.audio_bytes += len(audio)
        silent = SILENCE.get(self.fake.input_format, 0)
        voiced = any(b != silent for b in audio)
        if voiced and not self.speaking:
            self.speaking = True
            if self.reply is not None and not self.reply.done():
                self.reply.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.reply
                await self.send(
                    {"type": "interruption", "interruption_event": {"event_id": self.event_id}}
                )
                await self.send(
                    {
                        "type": "agent_response_correction",
                        "agent_response_correction_event": {
                            "original_agent_response": self.reply_text,
                            "corrected_agent_response": " ".join(self.spoken_words),
                        },
                    }
                )
        elif not voiced and self.speaking:
            self.speaking = False
            said = self.fake.caller_says.pop(0) if self.fake.caller_says else "Hi"
            await self.send(
                {"type": "user_transcript", "user_transcription_event": {"user_transcript": said}}
            )
            self.start_reply(self.next_reply())

    def start_reply(self, reply: Reply) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.cancel()
        self.reply = asyncio.create_task(self.respond(reply))

    async def respond(self, reply: Reply) -> None:
        if reply.tool is not None:
            call_id = f"tc_{self.next_id()}"
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.tool_results[call_id] = future
            await self.send(
                {
                    "type": "client_tool_call",
                    "client_tool_call": {
                        "tool_name": reply.tool,
                        "tool_call_id": call_id,
                        "parameters": reply.parameters,
                    },
                }
            )
            await future
            reply = self.next_reply()
        self.reply_text = reply.text
        self.spoken_words = []
        await self.send(
            {"type": "agent_response", "agent_response_event": {"agent_response": reply.text}}
        )
        words = reply.text.split()
        chunks = max(reply.audio_ms // 100, 1)
        per_ms = 8 if self.fake.output_format == "ulaw_8000" else 32
        for i in range(chunks):
            if reply.drop_after_chunks is not None and i == reply.drop_after_chunks:
                self.dropped = True
                await self.ws.close()
                return
            payload = bytes([0x55]) * (100 * per_ms)
            await self.send(
                {
                    "type": "audio",
                    "audio_event": {
                        "audio_base_64": base64.b64encode(payload).decode(),
                        "event_id": self.next_id(),
                    },
                }
            )
            self.spoken_words = words[: (i + 1) * len(words) // chunks]
            await asyncio.sleep(reply.pace_s)
