"""Real-time capacity: how many streams the engine can step within the time budget, not only hold in memory.

A step's cost depends on its batch bucket (a CUDA graph always computes the whole bucket: weights,
projections, norms) and on how many of its rows have audio (only those read their ring caches, which
at full batch is most of the step). So the model keeps two figures per bucket, timed at start-up: the
step with no row active and with every row active (rings read in full whatever a stream's age, so
hour-long streams cost the same). A step with `a` of its `b` rows active is predicted in between, in
proportion. Live steps then correct the model: their wall time (host work and the GPU sync included)
minus the prediction is followed as an exponential average and, where positive, added to every
prediction.

Admission takes the worst case, every live stream's audio arriving for the same step (as after an
outage, when all of them catch up): a new stream is admitted only while that step is predicted to
stay within the budget (default 75 % of the 80 ms a step must keep up with, so that bursts and
catch-up leave room). In normal running, streams' frames arrive spread over the 80 ms, each step
carries only the rows whose audio is in, and steps are much shorter than that worst case.
"""
import threading
import time

from .runner import bucket_for

LIVE_WEIGHT = 0.05  # each live step moves the correction 5 % of the way: ~20 steps to follow a change


class StepTimeModel:
    def __init__(self, sizes: list[int], budget_ms: float | None):
        """`budget_ms` None: no time limit (max_rows is the largest bucket); figures are still kept."""
        self.sizes = list(sizes)
        self.budget_ms = budget_ms
        self.ms: dict[int, float] = {}  # bucket -> ms per step with every row active
        self.idle_ms: dict[int, float] = {}  # bucket -> ms per step with no row active
        self.live_extra_ms = 0.0  # what live steps take beyond the start-up figures, averaged
        self._lock = threading.Lock()

    def measure(self, run, set_active=None, repeats: int = 3, sync=lambda: None) -> None:
        """Time `run(bucket)` for every bucket (median of `repeats` after one warm run), with every row
        active and, where `set_active(rows, on)` is given, with none."""
        for b in self.sizes:
            for on in (True, False) if set_active else (True,):
                if set_active:
                    set_active(b, on)
                run(b)
                times = []
                for _ in range(repeats):
                    sync()
                    t = time.perf_counter()
                    run(b)
                    sync()
                    times.append((time.perf_counter() - t) * 1000.0)
                (self.ms if on else self.idle_ms)[b] = sorted(times)[len(times) // 2]

    def _gpu_ms(self, rows: int, active: int) -> float | None:
        b = bucket_for(rows, self.sizes)
        full = self.ms.get(b)
        if full is None:
            return None
        idle = self.idle_ms.get(b, full)
        return idle + (full - idle) * min(active, b) / b

    def observe(self, rows: int, ms: float, active: int | None = None) -> None:
        """A live step over `rows` rows, `active` of them with audio (default all), took `ms` of wall time."""
        predicted = self._gpu_ms(rows, rows if active is None else active)
        if predicted is None:
            return
        with self._lock:
            self.live_extra_ms += LIVE_WEIGHT * (ms - predicted - self.live_extra_ms)

    def predict(self, rows: int) -> float | None:
        """Predicted ms of a step with `rows` rows all active, None if that bucket was never timed."""
        if rows <= 0:
            return 0.0
        gpu = self._gpu_ms(rows, rows)
        # Live steps faster than start-up's figures never loosen admission, slower ones tighten it.
        return None if gpu is None else gpu + max(0.0, self.live_extra_ms)

    def max_rows(self) -> int:
        """The most rows whose worst-case step stays within the budget: the largest bucket that, like every
        smaller one, is predicted under it. At least 1: a single stream is always served, if slowly."""
        if self.budget_ms is None:
            return self.sizes[-1]
        best = 0
        with self._lock:
            for b in self.sizes:
                ms = self.predict(b)
                if ms is None or ms > self.budget_ms:
                    break
                best = b
        return max(1, best)

    def figures(self) -> dict:
        """Predicted worst-case ms per bucket (start-up figure plus the live correction)."""
        with self._lock:
            return {str(b): round(self.predict(b), 2) for b in sorted(self.ms)}

    def idle_figures(self) -> dict:
        return {str(b): round(ms, 2) for b, ms in sorted(self.idle_ms.items())}
