"""What the WebSocket TTS fakes share: paced test audio and what they observed."""

from __future__ import annotations

from aiohttp import web

from tests.fakes.servers import FakeServer, Handler

CHUNKS = 50  # chunks per utterance
CHUNK_MS = 20  # audio per chunk
PACE_S = 0.01  # wall time between chunks, so a test can interrupt mid-stream


def chunk_bytes(encoding: str, sample_rate: int) -> int:
    """Bytes in one chunk: 1 byte per sample for G.711, 2 for 16-bit PCM."""
    width = 1 if encoding in ("pcm_mulaw", "pcm_alaw", "mulaw", "ulaw") else 2
    return sample_rate * CHUNK_MS // 1000 * width


def chunk(i: int, size: int) -> bytes:
    return bytes([(i * 7 + 1) % 256]) * size


class WsTTSFake(FakeServer):
    """``sent`` counts audio chunks sent per utterance id; ``stopped`` holds the ids whose
    stream stopped early because the client cancelled, cleared or hung up."""

    def __init__(self, routes: dict[str, tuple[str, Handler]]) -> None:
        super().__init__(routes)
        self.sent: dict[str, int] = {}
        self.stopped: set[str] = set()

    def count(self, utterance: str) -> None:
        self.sent[utterance] = self.sent.get(utterance, 0) + 1
        self.seen.audio_bytes += 1

    def stop(self, utterance: str) -> None:
        self.stopped.add(utterance)
        self.poke()


def unauthorized(body: dict[str, object]) -> web.Response:
    return web.json_response(body, status=401)
