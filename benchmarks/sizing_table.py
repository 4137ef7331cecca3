"""Live streams per GPU for deploy/README.md, from the measured bytes per stream and step-time model.

    python benchmarks/sizing_table.py [benchmarks/results/capacity-2026-11-30-h200.json]

Memory limit: what the engine's own sizing gives with its defaults (92 % of the memory left after the
weights, less 3 GiB for activations and graphs). Time limit: streams whose step stays within the 60 ms
budget, with the step modelled as a fixed part plus a part per stream, both fitted to the H200's
measured step times with every row active (the worst case admission takes), live host overhead
included. On another card the per-stream part (reading the stream's rings) and the weights' read scale
with memory bandwidth, the rest (kernel launches, small matrix work) is taken as the H200's. Only the H200 row is measured; the others are estimates from
datasheet bandwidths (at the 80 % of it that the H200 reached), which a site confirms with capacity_bench.py.
"""
import json
import os
import sys

GIB = 1024**3
WEIGHTS = 8.86e9  # 4.43 B parameters in bf16
CONTEXT_GIB = 0.6  # CUDA context and the prompt prefix
BUDGET_MS = 60.0
CARDS = [  # (memory GB as sold, GiB the driver reports, example, datasheet bandwidth TB/s)
    (16, 15.6, "RTX A4000", 0.448), (24, 22.5, "L4", 0.300), (48, 45.0, "L40S", 0.864),
    (80, 79.2, "H100 SXM", 3.35), (141, 140.4, "H200", 4.8),
]
H200_TB_S = 4.8
EFFICIENCY = 0.8  # the H200 read rings at ~3.85 TB/s of its 4.8 (benchmarks/results/ring-kernel-sweep-*)


def fit(figures: dict, live_extra_ms: float) -> tuple[float, float]:
    """Least squares ms = a + b * rows over the start-up bucket figures, plus the live steps' extra time."""
    xs, ys = zip(*((int(k), v) for k, v in figures.items()))
    n, mx, my = len(xs), sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx + live_extra_ms, b


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results", "capacity-2026-11-30-h200.json")
    doc = json.load(open(path))
    rows = []
    for eng in doc["engines"]:
        kv = eng["kv_dtype"]
        runs = [r for r in doc["runs"] if r["kv_dtype"] == kv and r.get("path", "engine") == "engine"]
        extra = max(r["step_ms_p50"] - r["step_ms_model"] for r in runs) if runs else 3.0
        a, b = fit(eng["step_ms_by_bucket_at_start"], max(0.0, extra))
        weights_ms = lambda tb_s: WEIGHTS / (EFFICIENCY * tb_s * 1e12) * 1000  # noqa: E731
        fixed = a - weights_ms(H200_TB_S)  # launches and small matrix work, taken as the H200's
        for gb, gib, name, tb_s in CARDS:
            free = gib - CONTEXT_GIB - WEIGHTS / GIB
            memory = max(0, int((free * 0.92 - 3.0) * GIB // eng["bytes_per_stream"]))
            per_stream = b * H200_TB_S / tb_s
            time_limit = max(0, int((BUDGET_MS - fixed - weights_ms(tb_s)) / per_stream))
            rows.append((gb, name, kv, memory, time_limit, min(memory, time_limit)))
    print("| card | example | rings | streams by memory | streams by step time (60 ms) | live streams |")
    print("|---:|---|---|---:|---:|---:|")
    for gb, name, kv, memory, time_limit, both in rows:
        if kv.startswith("float8") and name == "RTX A4000":  # compute 8.6: no fp8 (the engine refuses float8 rings there)
            memory = time_limit = both = "–"
        print(f"| {gb} GB | {name} | {kv} | {memory} | {time_limit} | **{both}** |")


if __name__ == "__main__":
    main()
