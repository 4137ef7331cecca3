"""Real-time capacity: how many streams the engine can step within the time budget, not only hold in memory.

A step's cost depends on the batch bucket it runs at (a CUDA graph always computes the whole bucket,
and every row reads its whole ring caches), so the model is one figure per bucket: measured at start-up
by timing each bucket's step, then followed by the live steps' wall time (host work and the GPU sync
included) as an exponential average. A new stream is admitted only while the step of the bucket that
would then run is predicted to stay within the budget (default 75 % of the 80 ms a step must keep up
with, so that bursts and catch-up leave room).
"""
import threading
import time

from .runner import bucket_for

LIVE_WEIGHT = 0.05  # each live step moves its bucket's figure 5 % of the way: ~20 steps to follow a change


class StepTimeModel:
    def __init__(self, sizes: list[int], budget_ms: float | None):
        """`budget_ms` None: no time limit (max_rows is the largest bucket); figures are still kept."""
        self.sizes = list(sizes)
        self.budget_ms = budget_ms
        self.ms: dict[int, float] = {}  # bucket -> predicted ms per step
        self._lock = threading.Lock()

    def measure(self, run, repeats: int = 3, sync=lambda: None) -> None:
        """Time `run(bucket)` for every bucket (median of `repeats` after one warm run)."""
        for b in self.sizes:
            run(b)
            times = []
            for _ in range(repeats):
                sync()
                t = time.perf_counter()
                run(b)
                sync()
                times.append((time.perf_counter() - t) * 1000.0)
            self.ms[b] = sorted(times)[len(times) // 2]

    def observe(self, rows: int, ms: float) -> None:
        """A live step of `rows` rows took `ms` of wall time."""
        b = bucket_for(rows, self.sizes)
        with self._lock:
            old = self.ms.get(b)
            self.ms[b] = ms if old is None else old + LIVE_WEIGHT * (ms - old)

    def predict(self, rows: int) -> float | None:
        """Predicted ms per step with `rows` rows, None if that bucket was never timed."""
        if rows <= 0:
            return 0.0
        return self.ms.get(bucket_for(rows, self.sizes))

    def max_rows(self) -> int:
        """The most rows whose step stays within the budget: the largest bucket that, like every smaller
        one, is predicted under it. At least 1: a single stream is always served, if slowly."""
        if self.budget_ms is None:
            return self.sizes[-1]
        best = 0
        with self._lock:
            for b in self.sizes:
                ms = self.ms.get(b)
                if ms is None or ms > self.budget_ms:
                    break
                best = b
        return max(1, best)

    def figures(self) -> dict:
        with self._lock:
            return {str(b): round(ms, 2) for b, ms in sorted(self.ms.items())}
