import warnings

import numpy as np
import pytest
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from patter_core.audio import g711
from patter_core.audio.formats import (
    ALAW_8K,
    L16_16K,
    MULAW_8K,
    PCM16_8K,
    PCM16_16K,
    PCM16_24K,
    AudioFormat,
    Encoding,
)
from patter_core.audio.quality import ideal_resample
from patter_core.audio.quality import snr_db as quality_snr_db
from patter_core.audio.resample import StreamResampler
from patter_core.audio.transcode import FrameSlicer, Transcoder
from tests.fakes.audio import mulaw, noise_burst, silence, voiced

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python 3.13+
        audioop = None

needs_audioop = pytest.mark.skipif(
    audioop is None, reason="audioop (the reference) was removed in Python 3.13"
)
ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


@needs_audioop
def test_ulaw_bit_exact_against_audioop():
    assert g711.ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM, 2)
    assert g711.ulaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.ulaw2lin(ALL_CODES, 2)


@needs_audioop
def test_alaw_bit_exact_against_audioop():
    assert g711.alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM, 2)
    assert g711.alaw_decode(ALL_CODES).astype("<i2").tobytes() == audioop.alaw2lin(ALL_CODES, 2)


def test_encode_accepts_arrays_and_bytes_alike():
    arr = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
    assert g711.ulaw_encode(arr) == g711.ulaw_encode(arr.astype("<i2").tobytes())


def _sine(freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 12000).astype(np.int16)


def _chirp(rate: int, seconds: float = 2.0, f0: float = 300, f1: float = 3400) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    k = (f1 - f0) / seconds
    return np.round(np.sin(2 * np.pi * (f0 * t + 0.5 * k * t * t)) * 10000).astype(np.int16)


def snr_db(got: np.ndarray, ref: np.ndarray, rate: int) -> float:
    return quality_snr_db(got, ref, rate // 5)


RATE_PAIRS = [(8000, 16000), (16000, 8000), (24000, 16000), (16000, 24000), (22050, 16000)]


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_framewise_resampling_equals_one_piece(src, dst):
    signal = _sine(1000, src, 2.0)
    frame = src // 50
    stream = StreamResampler(src, dst)
    framewise = np.concatenate(
        [stream.process(signal[i : i + frame]) for i in range(0, len(signal), frame)]
    )
    whole = StreamResampler(src, dst).process(signal)
    # The state carried across frames makes 100 small calls equal one big one.
    assert len(framewise) == len(whole)
    # Equal but for float32 rounding, which BLAS may block differently by size.
    assert np.max(np.abs(framewise.astype(np.int32) - whole)) <= 1
    # No clicks: no jump bigger than a 1 kHz sine at this amplitude allows.
    steady = framewise[dst // 10 :].astype(np.float64)
    max_step = 12000 * 2 * np.pi * 1000 / dst * 1.05
    assert np.max(np.abs(np.diff(steady))) <= max_step


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_telephone_band_quality_against_ideal_and_soxr(src, dst):
    chirp = _chirp(src)
    stream = StreamResampler(src, dst)
    frame = src // 50
    ours = np.concatenate(
        [stream.process(chirp[i : i + frame]) for i in range(0, len(chirp), frame)]
    )
    ideal = ideal_resample(chirp, src, dst, stream.delay_s)
    assert snr_db(ours, ideal, dst) >= 60
    # soxr, the well-known reference, agrees with the same ideal (sanity of the yardstick).
    ref = soxr.resample(chirp, src, dst, quality="VHQ")
    assert snr_db(ref, ideal_resample(chirp, src, dst), dst) >= 60


@pytest.mark.parametrize(("src", "dst"), RATE_PAIRS)
def test_every_frame_comes_out_whole_and_nothing_drifts(src, dst):
    stream = StreamResampler(src, dst)
    frame = _sine(1000, src, 0.02)
    total_in = total_out = 0
    sizes = set()
    for _ in range(30_000):  # 10 minutes of 20 ms frames
        out = stream.process(frame)
        total_in += len(frame)
        total_out += len(out)
        sizes.add(len(out))
    assert sizes == {dst // 50}  # each 20 ms in gives 20 ms out, at once
    assert total_out * src == total_in * dst


def test_passthrough_returns_the_same_object():
    t = Transcoder(MULAW_8K, MULAW_8K)
    data = bytes(range(160))
    assert t.passthrough and t.convert(data) is data
    assert StreamResampler(16000, 16000).passthrough


@pytest.mark.parametrize("fmt", [MULAW_8K, ALAW_8K])
def test_g711_round_trip_through_the_session_format(fmt):
    inbound, outbound = Transcoder(fmt, PCM16_16K), Transcoder(PCM16_16K, fmt)
    tone = _sine(440, 8000, 1.0)
    wire = g711.ulaw_encode(tone) if fmt is MULAW_8K else g711.alaw_encode(tone)
    back = b"".join(
        outbound.convert(inbound.convert(wire[i : i + 160])) for i in range(0, 8000, 160)
    )
    back += outbound.convert(inbound.flush()) + outbound.flush()
    decode = g711.ulaw_decode if fmt is MULAW_8K else g711.alaw_decode
    a = decode(wire).astype(np.float64)
    b = decode(back).astype(np.float64)
    # Align for the two resamplers' delay, then compare within G.711 + filter tolerance.
    # Two resamplers, each a few ms of fixed (fractional) delay: delay the reference.
    delay = inbound._resampler.delay_s + outbound._resampler.delay_s
    ref = ideal_resample(a, 8000, 8000, delay)
    snr = snr_db(b, ref, 8000)
    assert snr > 30  # two G.711 quantisations: about 35 dB


def test_l16_is_big_endian_on_the_wire():
    samples = np.array([1, -2, 300], dtype=np.int16)
    out = Transcoder(PCM16_16K, L16_16K).convert(samples.astype("<i2").tobytes())
    assert out == samples.astype(">i2").tobytes()
    back = Transcoder(L16_16K, PCM16_16K).convert(out)
    assert back == samples.astype("<i2").tobytes()


def test_odd_byte_counts_are_carried_not_dropped():
    t = Transcoder(PCM16_16K, L16_16K)
    data = np.arange(100, dtype="<i2").tobytes()
    out = t.convert(data[:33]) + t.convert(data[33:101]) + t.convert(data[101:])
    assert out == np.arange(100, dtype=">i2").tobytes()


def test_frame_slicer_keeps_remainder():
    s = FrameSlicer(MULAW_8K, 20)
    assert s.push(b"\x00" * 100) == []
    frames = s.push(b"\x01" * 250)
    assert [len(f) for f in frames] == [160, 160]
    assert len(s) == 30
    assert s.remainder() == b"\x01" * 30 and len(s) == 0
    assert FrameSlicer(PCM16_24K).frame_bytes == 960


FORMATS = [MULAW_8K, ALAW_8K, L16_16K, PCM16_8K, PCM16_16K, PCM16_24K]


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(FORMATS),
    st.sampled_from(FORMATS),
    st.lists(st.binary(max_size=700), max_size=6),
)
def test_any_bytes_convert_without_error(src, dst, chunks):
    t = Transcoder(src, dst)
    out = b"".join(t.convert(c) for c in chunks) + t.flush()
    if src == dst:
        assert out == b"".join(chunks)  # passthrough: untouched, odd bytes and all
    else:
        assert len(out) % dst.bytes_per_sample == 0


def test_audio_format_sizes():
    assert MULAW_8K.bytes_for_ms(20) == 160
    assert PCM16_16K.bytes_for_ms(20) == 640
    assert str(AudioFormat(Encoding.L16, 16000)) == "l16/16000"


# --- the C kernel (patter_core/audio/_fir.c) --------------------------------

KERNEL_PAIRS = [(8000, 16000), (16000, 8000), (24000, 16000), (16000, 24000), (8000, 24000)]


def test_the_c_kernel_is_built_by_the_install():
    """``make test`` installs the project, which compiles the kernel: a missing
    kernel means the build hook broke, and calls would quietly run 3x slower."""
    assert StreamResampler.accelerated()


@pytest.mark.parametrize(("src", "dst"), KERNEL_PAIRS)
@pytest.mark.parametrize("chunk", [1, 7, 160, 320, 481])
def test_kernel_matches_numpy_across_chunk_sizes(src, dst, chunk):
    rng = np.random.default_rng(src + dst + chunk)
    signal = (rng.standard_normal(src // 5) * 9000).clip(-32768, 32767).astype(np.int16)
    signal[100:140] = 32767  # full scale, so the filter's overshoot is clipped
    c, ref = StreamResampler(src, dst), StreamResampler(src, dst)
    pieces = range(0, len(signal), chunk)
    got = np.concatenate([c.process(signal[i : i + chunk]) for i in pieces])
    want = np.concatenate([ref._numpy(signal[i : i + chunk]) for i in pieces])
    assert len(got) == len(want)
    diff = np.abs(got.astype(np.int32) - want)
    # Same filter, summed in another order: at most a rounding step apart, rarely.
    assert diff.max() <= 1
    assert np.mean(diff == 0) > 0.99


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (MULAW_8K, PCM16_16K),
        (PCM16_16K, MULAW_8K),
        (ALAW_8K, PCM16_16K),
        (PCM16_16K, ALAW_8K),
        (PCM16_24K, MULAW_8K),
        (MULAW_8K, PCM16_24K),
        (PCM16_24K, PCM16_16K),
    ],
)
def test_fused_edge_equals_decode_resample_encode(src: AudioFormat, dst: AudioFormat):
    from patter_core.audio.transcode import decode, encode

    fused = Transcoder(src, dst)
    plain = StreamResampler(src.sample_rate, dst.sample_rate)
    tone = _sine(700, src.sample_rate, 0.5)
    wire = encode(tone, src.encoding)
    step = src.bytes_for_ms(20)
    for i in range(0, len(wire), step):
        chunk = wire[i : i + step]
        want = encode(plain.process(decode(chunk, src.encoding)), dst.encoding)
        assert fused.convert(chunk) == want


def test_kernel_rejects_bad_arguments_without_crashing():
    from patter_core.audio import _fir  # type: ignore[attr-defined]

    taps = np.ones((2, 4), np.float32).tobytes()
    state = bytearray(12)
    with pytest.raises(TypeError):
        _fir.run(bytes(12), taps, 2, 1, b"\0\0", None, None)  # state must be mutable
    with pytest.raises(TypeError):
        _fir.run(state, taps, 2, 1)
    with pytest.raises(ValueError, match="whole number"):
        _fir.run(state, taps, 2, 1, b"\0\0\0", None, None)  # half a sample
    with pytest.raises(ValueError, match="256"):
        _fir.run(state, taps, 2, 1, b"\0", b"\0" * 16, None)
    with pytest.raises(ValueError, match="65536"):
        _fir.run(state, taps, 2, 1, b"\0\0", None, b"\0" * 10)
    with pytest.raises(ValueError, match="positive"):
        _fir.run(state, taps, 0, 1, b"\0\0", None, None)
    with pytest.raises(ValueError, match="whole number"):
        _fir.run(state, b"\0" * 6, 2, 1, b"\0\0", None, None)  # taps not a whole phase
    # The state is untouched by a refused call, and a good call still works after.
    assert state == bytearray(12)
    assert len(_fir.run(state, taps, 2, 1, b"\0\0" * 10, None, None)) > 0


@pytest.mark.parametrize("fmt", [MULAW_8K, ALAW_8K, PCM16_16K], ids=lambda f: f.encoding.value)
def test_kernel_pcm16_matches_the_vad_numpy_decode_and_energy(fmt):
    from patter_core.audio import _fir  # type: ignore[attr-defined]
    from patter_core.session.vad import _LUTS, to_pcm16

    rng = np.random.default_rng(7)
    for n in (0, 1, 160, 320, 999):
        raw = rng.integers(0, 256, n * fmt.bytes_per_sample, dtype=np.uint8).tobytes()
        pcm, energy = _fir.pcm16(raw, _LUTS.get(fmt.encoding))
        expected = to_pcm16(raw, fmt)
        assert pcm == expected.tobytes()
        wide = expected.astype(np.float64)
        assert energy == pytest.approx(float(wide.dot(wide)) / n if n else 0.0, rel=1e-12)
    with pytest.raises(ValueError):
        _fir.pcm16(b"\0\0\0", None)  # half a sample
    with pytest.raises(ValueError):
        _fir.pcm16(b"\0", b"\0" * 16)  # not a 256-entry table
    with pytest.raises(TypeError):
        _fir.pcm16(b"\0")


@pytest.mark.parametrize("native", [True, False], ids=["c", "numpy"])
def test_vad_decides_the_same_with_or_without_the_kernel(native):
    from patter_core.session.vad import VoiceDetector

    audio = mulaw(silence(200) + voiced(400) + noise_burst(100) + silence(300))
    reference = VoiceDetector(MULAW_8K)
    reference._native = False
    detector = VoiceDetector(MULAW_8K)
    assert detector._native  # the kernel is built in this environment
    detector._native = native
    frames = [f for i in range(0, len(audio), 160) for f in detector.feed(audio[i : i + 160])]
    want = [f for i in range(0, len(audio), 160) for f in reference.feed(audio[i : i + 160])]
    assert [f.speech for f in frames] == [f.speech for f in want]
    assert any(f.speech for f in frames) and not all(f.speech for f in frames)
