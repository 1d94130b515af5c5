"""Speak pieces of one reply in order, synthesizing ahead.

Piece N+1 is synthesized while piece N's audio is still going out, but audio
leaves strictly in piece order. ``cancel()`` closes every synthesis in flight
(each TTS iterator is closed, so the provider's connection drops) and no
chunk is handed out afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from patter_core.audio.formats import AudioFormat
from patter_core.providers.base import TTS, Message, ProviderError

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Piece:
    """A run of text sent to TTS, the message it belongs to, and its audio length."""

    text: str
    message: Message
    audio_ms: float = 0.0
    chunks: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)


class Speaker:
    def __init__(
        self,
        tts: TTS,
        *,
        on_audio: Callable[[Piece, bytes], None],
        on_error: Callable[[ProviderError], None],
        lookahead: int = 2,
    ) -> None:
        self._tts = tts
        self._format: AudioFormat = tts.output_format
        self._on_audio = on_audio
        self._on_error = on_error
        self._slots = asyncio.Semaphore(max(lookahead, 1))
        self._order: asyncio.Queue[Piece | None] = asyncio.Queue()
        self._synths: set[asyncio.Task[None]] = set()
        self._player = asyncio.create_task(self._play())
        self._cancelled = False
        self._added = False
        self.first_byte_ms: float | None = None

    def add(self, piece: Piece) -> None:
        task = asyncio.create_task(self._synthesize(piece, first=not self._added))
        self._added = True
        self._synths.add(task)
        task.add_done_callback(self._synths.discard)
        self._order.put_nowait(piece)

    async def finish(self) -> None:
        """Wait until every added piece has been handed out."""
        self._order.put_nowait(None)
        await asyncio.shield(self._player)

    async def cancel(self) -> None:
        self._cancelled = True
        tasks = [*self._synths, self._player]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _synthesize(self, piece: Piece, *, first: bool) -> None:
        try:
            async with self._slots:
                started = time.monotonic()
                audio = self._tts.synthesize(piece.text)
                try:
                    async for chunk in audio:
                        if first and self.first_byte_ms is None:
                            self.first_byte_ms = (time.monotonic() - started) * 1000.0
                        if chunk:
                            piece.chunks.put_nowait(chunk)
                finally:
                    aclose = getattr(audio, "aclose", None)
                    if aclose is not None:
                        with contextlib.suppress(Exception):
                            await aclose()
        except ProviderError as exc:
            self._on_error(exc)
        except Exception as exc:
            log.exception("TTS failed for a piece")
            self._on_error(ProviderError(self._tts.name, f"{type(exc).__name__}: {exc}"))
        finally:
            piece.chunks.put_nowait(None)

    async def _play(self) -> None:
        bytes_per_ms = self._format.bytes_for_ms(1000) / 1000.0
        while (piece := await self._order.get()) is not None:
            while (chunk := await piece.chunks.get()) is not None:
                if self._cancelled:
                    return
                piece.audio_ms += len(chunk) / bytes_per_ms
                self._on_audio(piece, chunk)


def heard_texts(pieces: list[Piece], heard_ms: float) -> list[str]:
    """How much of each piece the caller heard, cutting the last one at a word."""
    out: list[str] = []
    left = heard_ms
    for piece in pieces:
        if left <= 0 or piece.audio_ms <= 0:
            out.append("")
            continue
        if left >= piece.audio_ms - 1.0:
            out.append(piece.text)
            left -= piece.audio_ms
            continue
        share = int(len(piece.text) * left / piece.audio_ms)
        cut = piece.text[:share]
        if share < len(piece.text) and not piece.text[share].isspace():
            cut = cut.rsplit(" ", 1)[0] if " " in cut else ""
        out.append(cut.strip())
        left = 0
    return out
