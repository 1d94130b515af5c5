"""Offline speech-to-text with PocketSphinx: no account, no key, no network.

PocketSphinx decodes utterances, not streams, so this module does its own
endpointing with PocketSphinx's voice-activity ``Endpointer``: speech opens an
utterance, ``silence_ms`` of non-speech closes it with a final, end-of-turn
result. Decoding is CPU work and runs in a worker thread, one stream at a time
per decoder, in the order audio arrived.

Accuracy on open vocabulary is poor, especially on 8 kHz telephone audio. Pass
``phrases=`` (what callers are expected to say) to build a small language
model; recognition then snaps to those words and becomes dependable enough for
demos and smoke tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from typing import Any

from patter_core.audio.formats import PCM16_16K, AudioFormat
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.stt.results import ResultChannel

log = logging.getLogger(__name__)

_FLUSH = object()
_CLOSE = object()
_PAD_BYTES = 16000 * 2 * 250 // 1000  # silence around a batch-decoded utterance


def _phrase_text(phrases: Sequence[str]) -> str:
    text = "\n".join(p.strip().lower() for p in phrases if p.strip())
    if not text:
        raise ValueError("phrases must contain at least one non-empty phrase")
    return text


def _build_lm_file(phrases: Sequence[str]) -> str:
    """Write an ARPA trigram model of ``phrases`` to a temporary file; return its path."""
    from pocketsphinx.lm import ArpaBoLM

    model = ArpaBoLM(text=_phrase_text(phrases), add_start=True, case="lower")
    model.compute()
    buf = io.StringIO()
    model.write(buf)
    return _temp_file(buf.getvalue(), ".arpa")


def _phrase_dictionary(phrases: Sequence[str]) -> str:
    """The lines of the shipped pronouncing dictionary for the words in ``phrases``.

    Given the whole 135,000-word dictionary, a decoder with a custom language
    model spends about 15 s at start-up mapping every word to it (a caller would
    wait that long for the greeting); with only the phrases' words it takes
    about 20 ms. Words the dictionary lacks are logged: they cannot be heard.
    """
    from pocketsphinx import get_model_path

    words = set(_phrase_text(phrases).split())
    path = os.path.join(get_model_path(), "en-us", "cmudict-en-us.dict")
    lines, found = [], set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word = line.split(" ", 1)[0].split("(", 1)[0]  # "read(2)" is a second pronunciation
            if word in words:
                lines.append(line)
                found.add(word)
    missing = sorted(words - found)
    if missing:
        log.warning("LocalSTT: no pronunciation for %s; those words cannot be recognised", missing)
    return "".join(lines)


def _temp_file(text: str, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="patter-lm-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


class LocalSTT:
    """PocketSphinx STT (English model shipped in the wheel), 16 kHz PCM16 input."""

    name = "local"

    def __init__(
        self,
        *,
        phrases: Sequence[str] | None = None,
        silence_ms: int = 500,
        interim_ms: int = 0,
        vad_mode: int = 1,
        open_timeout: float = 30.0,
    ) -> None:
        if not 90 <= silence_ms <= 3000:
            raise ValueError("silence_ms must be between 90 and 3000")
        self._phrases = list(phrases) if phrases else None
        self._dictionary: str | None = None  # the phrases' pronunciations, read once
        self._silence_ms = silence_ms
        self._interim_ms = interim_ms
        self._vad_mode = vad_mode
        self._open_timeout = open_timeout

    @property
    def input_format(self) -> AudioFormat:
        return PCM16_16K

    def _make_decoder(self) -> Any:
        from pocketsphinx import Decoder

        if self._phrases is None:
            return Decoder(samprate=16000, loglevel="FATAL")
        if self._dictionary is None:
            self._dictionary = _phrase_dictionary(self._phrases)
        lm = _build_lm_file(self._phrases)
        words = _temp_file(self._dictionary, ".dict")
        try:
            return Decoder(samprate=16000, lm=lm, dict=words, loglevel="FATAL")
        finally:
            os.unlink(lm)
            os.unlink(words)

    async def open(self, call_id: str) -> LocalSTTStream:
        try:
            decoder = await asyncio.wait_for(
                asyncio.to_thread(self._make_decoder), timeout=self._open_timeout
            )
        except TimeoutError as exc:
            raise ProviderError(self.name, "loading the model timed out") from exc
        except (RuntimeError, OSError) as exc:
            raise ProviderError(self.name, f"could not load the model: {exc}") from exc
        return LocalSTTStream(
            decoder,
            call_id=call_id,
            silence_ms=self._silence_ms,
            interim_ms=self._interim_ms,
            vad_mode=self._vad_mode,
        )


class LocalSTTStream:
    def __init__(
        self, decoder: Any, *, call_id: str, silence_ms: int, interim_ms: int, vad_mode: int
    ) -> None:
        from pocketsphinx import Endpointer

        self._decoder = decoder
        self._call_id = call_id
        self._ep = Endpointer(window=silence_ms / 1000, ratio=0.9, vad_mode=vad_mode)
        self._frame_bytes: int = self._ep.frame_bytes
        self._interim_bytes = 16000 * 2 * interim_ms // 1000
        self._utt_audio = bytearray()
        self._pending = b""
        self._in_utt = False
        self._since_interim = 0
        self._last_interim = ""
        self._bytes_in = 0
        self._inbox: asyncio.Queue[bytes | object] = asyncio.Queue()
        self._results = ResultChannel()
        self._closed = False
        self._worker = asyncio.create_task(self._run(), name=f"local-stt-{call_id}")

    @property
    def audio_seconds(self) -> float:
        return self._bytes_in / 32000

    async def push_audio(self, payload: bytes) -> None:
        if self._closed or self._results.ended:
            return
        self._bytes_in += len(payload)
        self._inbox.put_nowait(payload)

    def results(self) -> AsyncIterator[Transcription]:
        return self._results.iterate()

    async def finalize(self) -> None:
        if not self._closed:
            self._inbox.put_nowait(_FLUSH)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put_nowait(_CLOSE)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), timeout=10.0)
        except TimeoutError:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._results.end()

    async def _run(self) -> None:
        try:
            while True:
                item = await self._inbox.get()
                if item is _CLOSE:
                    out = await asyncio.to_thread(self._flush, True)
                    self._emit(out)
                    return
                if item is _FLUSH:
                    out = await asyncio.to_thread(self._flush, False)
                else:
                    assert isinstance(item, bytes)
                    out = await asyncio.to_thread(self._feed, item)
                self._emit(out)
        except Exception as exc:  # a decoder failure ends this stream, not the call
            log.warning("local STT failed on call %s: %s", self._call_id, exc)
            self._results.fail(ProviderError("local", f"decoder failed: {exc}"))
        finally:
            self._results.end()

    def _emit(self, out: list[Transcription]) -> None:
        for item in out:
            self._results.put(item)

    # --- worker-thread side -------------------------------------------------

    def _hyp(self) -> str:
        hyp = self._decoder.hyp()
        return str(hyp.hypstr).strip() if hyp is not None else ""

    def _end_utt(self, end_of_turn: bool) -> list[Transcription]:
        """Decode the whole utterance again in batch mode for the final text.

        Batch decoding normalises the cepstrum over the utterance instead of a
        running estimate, which is markedly more accurate on short turns.
        """
        if self._interim_bytes:
            self._decoder.end_utt()
        self._decoder.start_utt()
        pad = bytes(_PAD_BYTES)
        self._decoder.process_raw(pad + bytes(self._utt_audio) + pad, False, True)
        self._decoder.end_utt()
        self._utt_audio.clear()
        self._in_utt = False
        self._last_interim = ""
        text = self._hyp()
        return [Transcription(text, final=True, end_of_turn=end_of_turn)] if text else []

    def _feed(self, payload: bytes) -> list[Transcription]:
        out: list[Transcription] = []
        data = self._pending + payload
        n = len(data) - len(data) % self._frame_bytes
        self._pending = data[n:]
        for start in range(0, n, self._frame_bytes):
            speech = self._ep.process(data[start : start + self._frame_bytes])
            if speech is None:
                continue
            if not self._in_utt:
                if self._interim_bytes:
                    self._decoder.start_utt()
                self._in_utt = True
                self._since_interim = 0
            self._utt_audio += speech
            if self._interim_bytes:
                self._decoder.process_raw(speech, False, False)
                self._since_interim += len(speech)
            if not self._ep.in_speech:
                out.extend(self._end_utt(end_of_turn=True))
            elif self._interim_bytes and self._since_interim >= self._interim_bytes:
                self._since_interim = 0
                text = self._hyp()
                if text and text != self._last_interim:
                    self._last_interim = text
                    out.append(Transcription(text, final=False))
        return out

    def _flush(self, at_end: bool) -> list[Transcription]:
        """Finish the open utterance now (finalize, or the stream is closing)."""
        if at_end and self._ep.in_speech:
            speech = self._ep.end_stream(self._pending[: self._frame_bytes])
            self._pending = b""
            if speech is not None and self._in_utt:
                self._utt_audio += speech
        if not self._in_utt:
            return []
        return self._end_utt(end_of_turn=at_end)
