"""Voxtral Mini 4B Realtime transcription engine: many live streams and whole recordings, one GPU.

    engine = Engine.load("/srv/models/voxtral-realtime", EngineOptions(max_streams=64))
    stream = engine.open_stream(delay_ms=480, on_event=callback)   # EngineAtCapacity when full
    stream.push(pcm_int16)                                          # any thread, any chunk size
    text = stream.close()                                           # or close_nowait() -> Future
    engine.transcribe(recording, delay_ms=960) -> Transcript
    engine.health() -> dict
    engine.shutdown()

All model work runs on one engine thread (see scheduler.py); every public method is thread-safe and
returns without waiting for the GPU, except `Stream.close`, `transcribe*` and `shutdown`, which block
the calling thread (run them in a worker thread from asyncio, or use `close_nowait`). No Django here.
"""
import itertools
import logging
import threading

import numpy as np
import torch

from . import audio as A
from . import attention, loading, offline_batch
from .cache import FP8, CachePool, PoolShape
from .capacity import StepTimeModel
from .errors import (EngineAtCapacity, EngineError, EngineStopped, InvalidAudio, InvalidDelay, ModelCorrupt,
                     ModelIncomplete, ModelNotFound, StreamClosed)
from .events import Delta, Error, Final, TokenTime, Transcript, Word
from .options import EngineOptions
from .prefix import PromptPrefix
from .runner import StepRunner
from .scheduler import Scheduler
from .step import ModelStep, StepBuffers
from .stream import Stream, StreamState

__all__ = [
    "Engine", "EngineOptions", "Stream", "Transcript", "TokenTime", "Word", "Delta", "Final", "Error",
    "EngineError", "EngineAtCapacity", "EngineStopped", "InvalidAudio", "InvalidDelay", "ModelNotFound",
    "ModelIncomplete", "ModelCorrupt", "StreamClosed",
]

log = logging.getLogger(__name__)
GIB = 1024**3
DEFAULT_STEP_BUDGET_MS = 0.75 * A.STEP_MS  # 60 ms: a quarter of each step's 80 ms kept for bursts


def _device_and_dtype(options: EngineOptions):
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("The engine is configured for a GPU but CUDA is not available on this machine.")
    default = torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype = getattr(torch, options.dtype) if options.dtype else default
    return device, dtype


def _kv_dtypes(options: EngineOptions, device, dtype) -> tuple[torch.dtype, torch.dtype]:
    """The decoder's and the encoder's ring dtypes (see EngineOptions.kv_cache)."""
    choice = options.kv_cache
    if choice is None:  # 8-bit decoder rings where the card has fp8 and the engine serves live captions
        live = options.text_window is None
        fp8_card = device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)
        choice = "float8" if live and fp8_card and dtype == torch.bfloat16 else None
    if choice is None:
        return dtype, dtype
    if choice in ("float8", "fp8", "float8_e4m3fn", "float8-all"):
        if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
            raise EngineError("float8 ring caches need a GPU of compute capability 8.9 or newer (L4, L40S, H100, "
                              "H200); set SCRIBE_ASR_KV_CACHE to bfloat16 or leave it empty.")
        return FP8, FP8 if choice == "float8-all" else dtype
    if choice in ("bfloat16", "float32", "float16"):
        return getattr(torch, choice), getattr(torch, choice)
    raise EngineError(f"Unknown cache type {choice!r}: use bfloat16, float32, float8 or float8-all.")


def _ring_kernel(options: EngineOptions, device) -> bool:
    if options.attention not in (None, "ring", "sdpa"):
        raise EngineError(f"Unknown attention {options.attention!r}: use ring or sdpa.")
    if options.attention is None:
        return attention.available(device)
    return options.attention == "ring" and attention.triton is not None


def _step_budget(options: EngineOptions, device) -> float | None:
    if options.step_budget_ms is not None:
        return options.step_budget_ms or None  # 0 turns the time limit off
    return DEFAULT_STEP_BUDGET_MS if device.type == "cuda" else None


def _pool_slots(shape_for, device, dtype, kv_dtypes, options: EngineOptions) -> int:
    if device.type != "cuda":
        return options.max_streams
    free, _ = torch.cuda.mem_get_info(device)
    budget = free * options.memory_fraction - options.activation_reserve_gib * GIB
    per_slot = shape_for(1).bytes_per_slot(dtype, *kv_dtypes)
    slots = min(options.max_streams, int(budget // per_slot))
    if slots < 1:
        raise EngineError(
            f"Not enough free GPU memory for even one stream: {free / GIB:.1f} GiB free after loading the model, "
            f"{per_slot / GIB:.2f} GiB needed per stream plus {options.activation_reserve_gib} GiB reserve."
        )
    return slots


class Engine:
    def __init__(self, model, spec: loading.ModelSpec, options: EngineOptions = EngineOptions()):
        """Prefer `Engine.load`; this takes an already loaded model (tests, benchmarks)."""
        self.options, self.spec, self.model = options, spec, model
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        cfg = model.config
        if options.text_window:
            cfg.text_config.sliding_window = options.text_window  # read by the pool and the step's mask
        self.kv_dtype, self.audio_kv_dtype = _kv_dtypes(options, self.device, self.dtype)
        logmel = A.LogMel(spec.mel_filters, spec.global_log_mel_max)
        self.ring_kernel = _ring_kernel(options, self.device)
        prefix = None
        if options.prompt_prefix:  # before sizing the pool: the scratch it needs is given back first
            prefix = self._prefix(model, cfg, logmel, spec, self.ring_kernel)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        kv_dtypes = (self.kv_dtype, self.audio_kv_dtype)
        slots = _pool_slots(lambda n: PoolShape.for_model(cfg, n), self.device, self.dtype, kv_dtypes, options)
        self.pool = CachePool(PoolShape.for_model(cfg, slots), self.device, self.dtype, *kv_dtypes)
        bufs = StepBuffers.allocate(slots, cfg.audio_config.num_mel_bins, self.device, self.dtype)
        graphs = options.cuda_graphs and self.device.type == "cuda"
        self.runner = StepRunner(ModelStep(model, self.pool, bufs, self.ring_kernel), slots, use_graphs=graphs)
        self.runner.warm_up()
        self.step_model = StepTimeModel(self.runner.sizes, _step_budget(options, self.device))
        if self.step_model.budget_ms is not None:
            self._time_steps(bufs)
        self.scheduler = Scheduler(self.runner, self.pool, logmel, self.device, self.dtype, slots, options.health_window,
                                   self.step_model, prefix)
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()
        self.scheduler.start()

    def _time_steps(self, bufs: StepBuffers) -> None:
        """Every bucket's step with all rows active and with none (capacity.py); the rows' writes land in
        slots no stream holds yet, and are wiped after."""
        sync = (lambda: torch.cuda.synchronize(self.device)) if self.device.type == "cuda" else (lambda: None)

        def set_active(rows: int, on: bool):
            bufs.active.zero_()
            bufs.active[:rows] = on

        self.step_model.measure(self.runner.run, set_active, sync=sync)
        bufs.active.zero_()
        self.pool.reset_all()

    def _prefix(self, model, cfg, logmel, spec, ring_kernel: bool):
        """The prompt prefix, which also proves the ring kernel compiles here; where it does not (no C
        compiler for Triton's launcher, say), the engine falls back to SDPA and says so in the log."""
        args = (model, PoolShape.for_model(cfg, 1), logmel, spec, self.device, self.dtype, self.kv_dtype,
                self.audio_kv_dtype)
        self.ring_kernel = ring_kernel
        if not ring_kernel:
            return PromptPrefix(*args, ring_kernel=False)
        try:
            return PromptPrefix(*args, ring_kernel=True)
        except Exception:  # Triton's compile errors have no common type
            log.warning("the ring attention kernel failed to build; using PyTorch's SDPA", exc_info=True)
            self.ring_kernel = False
            return PromptPrefix(*args, ring_kernel=False)

    @classmethod
    def load(cls, model_dir, options: EngineOptions = EngineOptions()) -> "Engine":
        """Load from a local folder (never downloads), size the stream pool, capture and warm up the step."""
        device, dtype = _device_and_dtype(options)
        model, spec = loading.load(model_dir, device, dtype)
        return cls(model, spec, options)

    @property
    def capacity(self) -> int:
        """Streams that fit in memory (the pool's slots); see `realtime_capacity` for live captions."""
        return self.scheduler.slots

    @property
    def realtime_capacity(self) -> int:
        """Live streams the engine admits: the smaller of the memory limit and the step-time limit."""
        return self.scheduler.realtime_capacity()

    def free_slots(self) -> int:
        return self.scheduler.free_slots()

    def open_stream(self, delay_ms: int = 480, on_event=None, *, realtime: bool = True) -> Stream:
        """Start a live stream. Raises InvalidDelay, EngineAtCapacity or EngineStopped at once.

        `realtime=False` (recording segments) skips the step-time limit: such a stream may fall behind."""
        A.delay_steps(delay_ms)
        with self._ids_lock:
            stream_id = next(self._ids)
        state = StreamState(stream_id, delay_ms, self.spec, self.scheduler.cond, on_event)
        handle = Stream(self, state)
        if on_event is None:
            import queue

            handle.events = queue.SimpleQueue()
            state.on_event = handle.events.put
        self.scheduler.admit(state, realtime=realtime)
        return handle

    def transcribe(self, audio: np.ndarray, delay_ms: int = 960) -> Transcript:
        """A whole recording (16 kHz mono int16/float32). Blocks the calling thread."""
        return self.transcribe_many([audio], delay_ms)[0]

    def transcribe_many(self, recordings: list, delay_ms: int = 960, on_progress=None) -> list[Transcript]:
        """Several recordings, their segments batched together (prefill plus decode). Blocks the calling
        thread, which `on_progress(fraction)` is called on as segments finish."""
        A.delay_steps(delay_ms)
        o = self.options
        return offline_batch.transcribe_many(self, recordings, delay_ms, o.offline_segment_s, o.offline_search_s,
                                             on_progress=on_progress)

    def health(self) -> dict:
        """Watchdog figures: last_step_at (epoch s), step_ms_p50/p95, active_streams, capacity, per-stream lag."""
        return self.scheduler.health()

    def shutdown(self) -> None:
        """Stop the engine thread; open streams receive an Error event and their futures fail."""
        self.scheduler.stop()

    # Stream handles call these.
    def _push(self, state, pcm):
        self.scheduler.push(state, pcm)

    def _close(self, state):
        self.scheduler.close(state)

    def _abort(self, state):
        self.scheduler.abort(state)
