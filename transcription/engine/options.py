"""Engine options, built once from settings (the caption layer maps its ASR_* settings onto these)."""
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineOptions:
    device: str | None = None  # "cuda", "cuda:1", "cpu"; None: the first GPU if there is one
    dtype: str | None = None  # "bfloat16" or "float32"; None: bfloat16 on GPU, float32 on CPU
    max_streams: int = 64  # upper bound; the pool is also capped by free GPU memory
    memory_fraction: float = 0.92  # share of free GPU memory (after the weights) the pool may take
    activation_reserve_gib: float = 3.0  # kept free for activations and CUDA graphs
    cuda_graphs: bool = True
    offline_segment_s: int = 60  # offline: cut long recordings near this length, at the quietest point
    offline_search_s: int = 10  # ... looking this far back from the target for the quiet point
    offline_batch: int = 256  # offline: segments decoded at once (prefill + decode), also capped by free GPU memory
    health_window: int = 500  # steps kept for the step-time percentiles
    # Real-time admission: a live stream is refused when the step it would make the engine run is
    # predicted to take longer than this (75 % of the 80 ms a step must keep up with, for headroom).
    # None: 60 ms on a GPU, no time limit on a CPU (development and tests, where steps are far slower).
    step_budget_ms: float | None = None
    # Ring caches: "bfloat16"/"float32", "float8" (the decoder's rings in e4m3 with a scale per vector, the
    # encoder's in the model's dtype: 0.65 GB per stream instead of 1.07) or "float8-all" (the encoder's too:
    # 0.55 GB). The encoder's rings are a fifth of the bytes but most of what 8 bits cost in agreement with
    # `generate`: on the full-size random model bf16 rings agree 97.8 %, "float8" 98.0 %, "float8-all" 94.6 %
    # (benchmarks/results/capacity-2026-11-30-h200.json). None: "float8" on a GPU with fp8 (compute
    # capability 8.9 or newer) for engines that serve live captions (no text_window), the model's otherwise.
    kv_cache: str | None = None
    # Attention over the rings: "ring" (attention.py's split-KV Triton kernel, reads fp8 rings directly),
    # "sdpa" (PyTorch's; fp8 rings are widened first), or None: "ring" on a GPU when Triton works there.
    attention: str | None = None
    prompt_prefix: bool = True  # copy the silent start of each stream from caches computed at start-up
    # Decoder ring in steps; None: the model's sliding window (8,192 steps, 655 s). Only for workers that
    # transcribe recordings and serve no live captions: offline segments need ~900 steps, and a ring
    # sized to them lets several times more segments run at once (each step reads every ring in full).
    # A live stream longer than the ring would attend to less context than the model was trained with.
    text_window: int | None = None
