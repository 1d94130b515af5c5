"""LocalTTS → LocalSTT round trips: the offline pair with no network at all."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soxr

from patter_core.audio.formats import Encoding
from patter_core.providers.base import ProviderError, Transcription
from patter_core.providers.stt import LocalSTT
from patter_core.providers.tts import LocalTTS
from patter_core.providers.tts.local import ESPEAK_RATE

PHRASES = [
    "check my order status",
    "cancel my appointment",
    "what time do you open",
    "speak to a human agent",
    "yes that is correct",
    "please",
    "hello",
]


async def speak(text: str, tts: LocalTTS | None = None) -> bytes:
    tts = tts or LocalTTS()
    return b"".join([chunk async for chunk in tts.synthesize(text)])


def to_16k(pcm: bytes, rate: int = ESPEAK_RATE) -> bytes:
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768
    y = soxr.resample(x, rate, 16000)
    return (np.clip(y, -1, 1) * 32767).astype(np.int16).tobytes()


def silence(ms: int) -> bytes:
    return bytes(16000 * 2 * ms // 1000)


async def transcribe(stt: LocalSTT, audio: bytes, *, close: bool = False) -> list[Transcription]:
    stream = await stt.open("call-1")
    got: list[Transcription] = []

    async def collect() -> None:
        async for item in stream.results():
            got.append(item)
            if item.end_of_turn:
                return

    reader = asyncio.create_task(collect())
    for start in range(0, len(audio), 640):  # 20 ms frames, as a carrier delivers them
        await stream.push_audio(audio[start : start + 640])
    if close:
        await stream.close()
    await reader
    await stream.close()
    assert stream.audio_seconds == pytest.approx(len(audio) / 32000)
    return got


async def test_local_tts_produces_pcm16_at_its_native_rate() -> None:
    tts = LocalTTS()
    assert tts.output_format.encoding is Encoding.PCM16
    assert tts.output_format.sample_rate == 22050
    pcm = await speak("please check my order status", tts)
    seconds = len(pcm) / 2 / 22050
    assert 1.0 < seconds < 4.0
    assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() > 3000
    assert tts.characters == len("please check my order status")


async def test_round_trip_open_vocabulary_gets_key_words() -> None:
    pcm = to_16k(await speak("please check my order status"))
    got = await transcribe(LocalSTT(), silence(300) + pcm + silence(1000))
    finals = [t for t in got if t.final]
    assert finals and finals[-1].end_of_turn
    text = " ".join(t.text for t in finals)
    assert "order" in text and "status" in text


async def test_round_trip_with_phrases_over_telephone_band() -> None:
    # Caller side of a phone call: 22.05 kHz → 8 kHz (the carrier's band) → 16 kHz.
    pcm = await speak("I would like to cancel my appointment")
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768
    narrow = soxr.resample(x, ESPEAK_RATE, 8000)
    wide = soxr.resample(narrow, 8000, 16000)
    audio = (np.clip(wide, -1, 1) * 32767).astype(np.int16).tobytes()
    got = await transcribe(LocalSTT(phrases=PHRASES), silence(200) + audio + silence(1000))
    final = [t for t in got if t.final][-1]
    assert "cancel" in final.text and "appointment" in final.text


async def test_two_turns_give_two_end_of_turn_finals() -> None:
    first = to_16k(await speak("check my order status"))
    second = to_16k(await speak("yes that is correct"))
    stream = await LocalSTT(phrases=PHRASES).open("call-2")
    audio = silence(200) + first + silence(900) + second + silence(900)
    for start in range(0, len(audio), 640):
        await stream.push_audio(audio[start : start + 640])
    await stream.close()
    turns = [t.text async for t in stream.results() if t.end_of_turn]
    assert len(turns) == 2
    assert "order" in turns[0] and "correct" in turns[1]


async def test_finalize_and_close_flush_an_unfinished_utterance() -> None:
    pcm = to_16k(await speak("check my order status"))
    stream = await LocalSTT(phrases=PHRASES).open("call-3")
    await stream.push_audio(silence(200) + pcm)  # no trailing silence: still in speech
    await stream.finalize()
    await stream.close()
    results = [t async for t in stream.results()]
    finals = [t for t in results if t.final]
    assert len(finals) == 1 and "order" in finals[0].text
    assert not finals[0].end_of_turn  # finalize fixes text; the turn ending is known elsewhere


async def test_silence_and_garbage_give_no_results_and_no_crash() -> None:
    stream = await LocalSTT().open("call-4")
    await stream.push_audio(silence(1000))
    await stream.push_audio(b"\x01")  # odd byte count: kept until the next frame fills
    noise = np.random.default_rng(1).integers(-200, 200, 16000, dtype=np.int16).tobytes()
    await stream.push_audio(noise)
    await stream.close()
    assert [t async for t in stream.results()] == []
    await stream.push_audio(silence(20))  # after close: ignored, not an error


async def test_tts_close_mid_stream_stops_the_engine() -> None:
    tts = LocalTTS()
    long_text = "This sentence is long enough to produce many chunks of audio. " * 20
    full = len(await speak("This sentence is long enough to produce many chunks of audio. "))
    produced = 0
    agen = tts.synthesize(long_text)
    async for chunk in agen:
        produced += len(chunk)
        break
    await agen.aclose()  # type: ignore[attr-defined]
    # The next synthesis starts immediately and is not polluted by the aborted one.
    short = await speak("hello", tts)
    assert 0 < len(short) < full
    assert produced < full * 20


async def test_unknown_voice_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="voice"):
        await speak("hello", LocalTTS(voice="no-such-voice"))


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        LocalSTT(silence_ms=10)
    with pytest.raises(ValueError):
        LocalTTS(words_per_minute=5)


def test_phrases_build_a_dictionary_of_their_own_words(caplog: pytest.LogCaptureFixture) -> None:
    """A decoder given the whole dictionary with a custom model took ~15 s to start."""
    from patter_core.providers.stt.local import _phrase_dictionary

    with caplog.at_level("WARNING"):
        lines = _phrase_dictionary(["Read my order", "zzyzxq"]).splitlines()
    heads = sorted(line.split(" ", 1)[0] for line in lines)
    assert heads == ["my", "order", "read", "read(2)"]  # every pronunciation, nothing else
    assert "zzyzxq" in caplog.text


async def test_a_phrases_decoder_hears_its_words_from_a_cold_start() -> None:
    stt = LocalSTT(phrases=["check my order status", "goodbye"])
    stream = await stt.open("call-1")
    try:
        assert stt._dictionary is not None and len(stt._dictionary.splitlines()) < 20
    finally:
        await stream.close()
