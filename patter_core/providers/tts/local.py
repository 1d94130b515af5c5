"""Offline text-to-speech with eSpeak NG: no account, no key, no network.

The ``espeakng-loader`` wheel ships ``libespeak-ng`` and its voice data; this
module calls the library's C API through ctypes. eSpeak NG keeps one global
synthesiser per process, so syntheses take turns behind a lock and run in a
worker thread. Audio arrives through eSpeak's callback in small chunks, which
are handed to the event loop as they come; closing the iterator makes the next
callback abort the synthesis.

It sounds robotic. It is for development, demos and air-gapped smoke tests.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import AsyncIterator
from typing import Any

from patter_core.audio.formats import AudioFormat, Encoding
from patter_core.providers.base import ProviderError

ESPEAK_RATE = 22050
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_BUFFER_MS = 60

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Engine:
    """The process's single eSpeak NG instance."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data, 0)
        if rate != ESPEAK_RATE:
            raise RuntimeError(f"eSpeak NG initialised at {rate} Hz, expected {ESPEAK_RATE}")
        self._lib = lib
        self._lock = threading.Lock()
        self._sink: Any = None
        # Keep a reference: ctypes frees the trampoline if the object is collected.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, count: int, _events: Any) -> int:
        sink = self._sink
        if sink is None:
            return 1
        if wav and count > 0:
            return 0 if sink(ctypes.string_at(wav, count * 2)) else 1
        return 0

    def synth(self, text: str, voice: str, wpm: int, sink: Any) -> None:
        """Blocking: speak ``text``; ``sink(chunk) -> bool`` returns False to abort."""
        raw = text.encode("utf-8")
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"unknown eSpeak NG voice {voice!r}")
            self._lib.espeak_SetParameter(_PARAM_RATE, wpm, 0)
            self._sink = sink
            try:
                status = self._lib.espeak_Synth(
                    raw, len(raw) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
            finally:
                self._sink = None
        if status != 0:
            raise RuntimeError(f"espeak_Synth returned {status}")


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


class LocalTTS:
    """eSpeak NG TTS; PCM16 mono at 22050 Hz.

    ``characters`` counts the characters synthesised, the unit cloud TTS bills in,
    so cost reports line up across providers (the local cost is zero).
    """

    name = "local"

    def __init__(self, *, voice: str = "en-us+f2", words_per_minute: int = 150) -> None:
        if not 80 <= words_per_minute <= 450:
            raise ValueError("words_per_minute must be between 80 and 450")
        self.voice = voice
        self.words_per_minute = words_per_minute
        self.characters = 0
        self.chunk_timeout = 30.0

    @property
    def output_format(self) -> AudioFormat:
        return AudioFormat(Encoding.PCM16, ESPEAK_RATE)

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        if not text.strip():
            return
        self.characters += len(text)
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        stop = threading.Event()

        def sink(chunk: bytes) -> bool:
            if stop.is_set():
                return False
            loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            return True

        def run() -> None:
            try:
                _get_engine().synth(text, self.voice, self.words_per_minute, sink)
            finally:
                if not stop.is_set():
                    loop.call_soon_threadsafe(chunks.put_nowait, None)

        job = asyncio.ensure_future(asyncio.to_thread(run))
        try:
            while True:
                chunk = await asyncio.wait_for(chunks.get(), timeout=self.chunk_timeout)
                if chunk is None:
                    break
                yield chunk
            await job
        except TimeoutError as exc:
            raise ProviderError(self.name, "eSpeak NG stalled") from exc
        except (ValueError, RuntimeError, OSError) as exc:
            raise ProviderError(self.name, str(exc)) from exc
        finally:
            stop.set()
            if not job.done():
                # The next eSpeak callback sees ``stop`` and aborts within one buffer.
                await asyncio.shield(job)

    async def close(self) -> None:
        """Nothing per instance to release; the eSpeak engine lives for the process."""
