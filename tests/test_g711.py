"""G.711 tables must match CPython's audioop bit for bit (the historical reference)."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from patter_core.audio import g711


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ImportError:
            pytest.skip("audioop is not available (removed in Python 3.13); no reference")


ALL_PCM = np.arange(-32768, 32768, dtype="<i2").tobytes()
ALL_CODES = bytes(range(256))


def test_ulaw_encode_matches_audioop_for_every_sample() -> None:
    assert g711.ulaw_encode(ALL_PCM) == _audioop().lin2ulaw(ALL_PCM, 2)


def test_alaw_encode_matches_audioop_for_every_sample() -> None:
    assert g711.alaw_encode(ALL_PCM) == _audioop().lin2alaw(ALL_PCM, 2)


def test_ulaw_decode_matches_audioop_for_every_code() -> None:
    assert g711.ulaw_decode_bytes(ALL_CODES) == _audioop().ulaw2lin(ALL_CODES, 2)


def test_alaw_decode_matches_audioop_for_every_code() -> None:
    assert g711.alaw_decode_bytes(ALL_CODES) == _audioop().alaw2lin(ALL_CODES, 2)


def test_array_and_bytes_inputs_agree() -> None:
    samples = np.frombuffer(ALL_PCM, dtype="<i2")
    assert g711.ulaw_encode(samples) == g711.ulaw_encode(ALL_PCM)
    assert g711.alaw_encode(samples.astype(">i2")) == g711.alaw_encode(ALL_PCM)


def test_decode_returns_int16_arrays() -> None:
    for decoded in (g711.ulaw_decode(ALL_CODES), g711.alaw_decode(ALL_CODES)):
        assert decoded.dtype == np.int16
        assert decoded.shape == (256,)


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_codes_survive_decode_then_encode(
    encode: Callable[[np.ndarray], bytes], decode: Callable[[bytes], np.ndarray]
) -> None:
    # µ-law has two zero codes (0x7F and 0xFF); both decode to 0, which encodes to 0xFF.
    reencoded = encode(decode(ALL_CODES))
    differing = [c for c in range(256) if reencoded[c] != c]
    assert differing in ([], [0x7F])


def test_transcode_tables_match_the_linear_detour() -> None:
    assert ALL_CODES.translate(g711.ULAW_TO_ALAW) == g711.alaw_encode(g711.ulaw_decode(ALL_CODES))
    assert ALL_CODES.translate(g711.ALAW_TO_ULAW) == g711.ulaw_encode(g711.alaw_decode(ALL_CODES))


def test_odd_byte_pcm_is_rejected() -> None:
    with pytest.raises(ValueError):
        g711.ulaw_encode(b"\x00\x01\x02")


def test_non_int16_array_is_rejected() -> None:
    with pytest.raises(TypeError):
        g711.alaw_encode(np.zeros(4, dtype=np.float32))


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_DECODE_TABLE[0] = 1
