"""Yardsticks for resampler quality: an ideal band-limited resampling, and SNR against it."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def ideal_resample(
    x: npt.NDArray[np.int16] | npt.NDArray[np.float64], src: int, dst: int, delay_s: float = 0.0
) -> npt.NDArray[np.float64]:
    """FFT resampling with a perfect brick-wall filter, delayed by ``delay_s``."""
    n = len(x)
    m = round(n * dst / src)
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    out = np.zeros(m // 2 + 1, complex)
    k = min(len(spec), len(out))
    out[:k] = spec[:k]
    out *= np.exp(-2j * np.pi * np.arange(len(out)) * delay_s * dst / m)
    result: npt.NDArray[np.float64] = np.fft.irfft(out, m) * m / n
    return result


def snr_db(got: npt.NDArray[np.generic], ref: npt.NDArray[np.float64], edge: int) -> float:
    """SNR of ``got`` against ``ref``, ignoring ``edge`` samples at each end (FFT wrap-around)."""
    n = min(len(got), len(ref))
    cut = slice(edge, n - edge)
    err = np.asarray(got[cut], dtype=np.float64) - ref[cut]
    return float(10 * np.log10(np.sum(ref[cut] ** 2) / np.sum(err**2)))
