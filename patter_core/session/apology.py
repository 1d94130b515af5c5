"""The clip a caller hears when the agent's brain fails mid-call.

The engine that would have spoken is gone by then, so the words are rendered
offline with eSpeak NG, in the carrier's format, once per process and text
(about 60 ms the first time): a failing provider usually fails many calls at
once, and each caller should hear the apology straight away.
"""

from __future__ import annotations

from patter_core.audio.formats import AudioFormat
from patter_core.audio.transcode import Transcoder
from patter_core.providers.tts.local import LocalTTS

_clips: dict[tuple[str, AudioFormat], bytes] = {}


async def apology_clip(text: str, wire: AudioFormat) -> bytes:
    """``text`` spoken in ``wire`` format; cached, so only the first failure pays for it."""
    key = (text, wire)
    clip = _clips.get(key)
    if clip is None:
        tts = LocalTTS()
        pcm = b"".join([chunk async for chunk in tts.synthesize(text)])
        convert = Transcoder(tts.output_format, wire)
        clip = convert.convert(pcm) + convert.flush()
        _clips[key] = clip
    return clip
