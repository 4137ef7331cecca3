"""The engine thread: each tick steps every stream that has 80 ms of new audio, as one batch.

Callers only touch stream buffers under `cond`; all model work happens here. Live streams occupy pool
slots 0..n-1 (a leaving stream's slot is filled by moving the last one), so a tick runs rows 0..n-1
and rows without new audio ride along inactive. A stream with a backlog is ready on every tick, so it
catches up at the tick rate while others keep their pace.
"""
import collections
import sys
import threading
import time

import numpy as np
import torch

from .audio import STEP_MS
from .errors import EngineAtCapacity, EngineError, EngineStopped
from .stream import StreamState

SWITCH_INTERVAL_S = 0.0005


class Scheduler:
    def __init__(self, runner, pool, logmel, device, dtype, slots: int, health_window: int, step_model, prefix=None):
        self.runner, self.pool, self.logmel = runner, pool, logmel
        self.step_model = step_model  # capacity.StepTimeModel: real-time admission
        self.prefix = prefix  # prefix.PromptPrefix: a joining stream starts past its silent left pad
        self.device, self.dtype = device, dtype
        self.slots = slots
        self.cond = threading.Condition()
        self.streams: list[StreamState] = []  # index == slot
        self.to_reset: list[StreamState] = []
        self.stopping = False
        self.dead: BaseException | None = None
        self.step_ms: collections.deque = collections.deque(maxlen=health_window)
        self.batch_sizes: collections.deque = collections.deque(maxlen=health_window)
        self.last_step_at: float | None = None
        self.steps = 0
        self.thread = threading.Thread(target=self._run, name="asr-engine", daemon=True)

    def start(self):
        # The engine thread gives up the GIL at every GPU wait and host copy of a step, a dozen times, and
        # each time waits for it again while the process's other threads run Python (a server's event
        # loop). At CPython's default 5 ms switch interval, a caption worker serving 150 streams stepped in
        # 153 ms at p95; at 0.5 ms, in 87.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.thread.start()

    # --- called from any thread ---
    def admit(self, state: StreamState, realtime: bool = True) -> None:
        """Take a stream into a slot. A real-time stream is refused when memory or step time is full;
        others (recording segments, which may run slower than real time) only when memory is."""
        with self.cond:
            self._check_alive()
            if len(self.streams) >= self.slots:
                raise EngineAtCapacity(
                    f"All {self.slots} live caption slots are in use. Try again when a meeting ends, or add GPU capacity."
                )
            if realtime and len(self.streams) >= self.step_model.max_rows():
                raise EngineAtCapacity(self._time_full_message())
            state.slot = len(self.streams)
            self.streams.append(state)
            self.to_reset.append(state)
            self.cond.notify()

    def _time_full_message(self) -> str:
        rows = len(self.streams)
        predicted = self.step_model.predict(rows + 1) or 0.0
        streams = f"{rows} stream{'s' if rows != 1 else ''}"
        return (f"The engine is captioning {streams}, as many as it can keep in real time: one more would make "
                f"each step take about {predicted:.0f} ms, over its {self.step_model.budget_ms:.0f} ms budget. "
                "Try again when a meeting ends, or add GPU capacity.")

    def realtime_capacity(self) -> int:
        """Streams the engine can hold and step in real time: the smaller of the memory and time limits."""
        return min(self.slots, self.step_model.max_rows())

    def free_slots(self) -> int:
        with self.cond:
            return self.slots - len(self.streams)

    def push(self, state: StreamState, pcm: np.ndarray) -> None:
        with self.cond:
            self._check_alive()
            state.append(pcm, time.monotonic())
            self.cond.notify()

    def close(self, state: StreamState) -> None:
        with self.cond:
            state.finish(time.monotonic())
            self.cond.notify()

    def abort(self, state: StreamState) -> None:
        with self.cond:
            state.finish(time.monotonic())
            state.failed = True
            if not state.result.done():
                state.result.cancel()
            self.cond.notify()

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join()

    def _check_alive(self):
        if self.stopping or self.dead is not None:
            raise EngineStopped("The transcription engine has stopped; restart the service.")

    # --- engine thread ---
    def _run(self):
        if self.device.type == "cuda":
            # A step's host work (the log-mel of its windows, a few small tensors) is a millisecond on one
            # core. Split over every core, each parallel section waits for its slowest thread, and in a
            # server whose cores are busy with sockets that wait is a scheduler tick or more, several times
            # a step. OpenMP's thread count is per calling thread: this sets the engine thread's only.
            torch.set_num_threads(1)
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                self._step(batch)
        except BaseException as exc:  # report to every stream, then let the watchdog see a dead engine
            self.dead = exc
            with self.cond:
                for s in self.streams:
                    s.fail(f"The transcription engine failed: {exc}", EngineError(str(exc)))
                self.streams.clear()

    def _next_batch(self):
        with self.cond:
            while True:
                if self.stopping:
                    for s in self.streams:
                        s.fail("The transcription engine was shut down.", EngineStopped("engine shut down"))
                    self.streams.clear()
                    return None
                # New streams first, in the slots they were admitted to: retiring compacts the slots, and a
                # newcomer dropped before it started would otherwise reset the slot a running stream moved into.
                for s in self.to_reset:
                    self._start(s)
                self.to_reset.clear()
                self._retire_finished()
                ready = [s for s in self.streams if s.ready()]
                if ready:
                    return [(s, *s.take_window()) for s in ready]
                self.cond.wait(timeout=1.0)

    def _start(self, state: StreamState) -> None:
        """A fresh slot; with a prompt prefix, the stream's known start is copied in rather than stepped."""
        self.pool.reset(state.slot)
        if self.prefix is not None:
            state.skip_to(self.prefix.apply(self.pool, state.slot, state.delay_steps))

    def _retire_finished(self):
        """Complete finished streams and compact: the last live stream moves into the freed slot."""
        i = 0
        while i < len(self.streams):
            s = self.streams[i]
            if not (s.done or s.failed):
                i += 1
                continue
            if not s.failed:
                s.complete()
            last = self.streams.pop()
            if last is not s:
                self.pool.move(last.slot, s.slot)
                last.slot = s.slot
                self.streams[s.slot] = last

    def _step(self, batch):
        started = time.monotonic()
        rows = len(self.streams)  # all live streams sit in slots 0..rows-1
        b = self.runner.step.bufs
        mel = self.logmel(torch.from_numpy(np.stack([w for _, w, _ in batch])))  # (N, MELS, 8)
        slots = torch.tensor([s.slot for s, _, _ in batch])
        active = torch.zeros(rows, dtype=torch.bool)
        active[slots] = True
        token = torch.tensor([s.input_token() for s, _, _ in batch])
        pos = torch.tensor([s.pos for s, _, _ in batch])
        delay = torch.tensor([s.delay_steps for s, _, _ in batch])
        dev_slots = slots.to(self.device)
        b.mel[dev_slots] = mel.to(self.device, self.dtype)
        b.token[dev_slots] = token.to(self.device)
        b.pos[dev_slots] = pos.to(self.device)
        b.delay[dev_slots] = delay.to(self.device)
        b.active[:rows] = active.to(self.device)
        out = self.runner.run(rows).cpu()[slots].tolist()  # the one GPU sync of a tick
        now = time.monotonic()
        with self.cond:
            for (s, _, ready_at), tok in zip(batch, out):
                if not s.failed:
                    s.accept(tok, max(0.0, (now - ready_at) * 1000.0))
            self.step_ms.append((now - started) * 1000.0)
            self.step_model.observe(rows, (now - started) * 1000.0, active=len(batch))
            self.batch_sizes.append(len(batch))
            self.last_step_at = time.time()
            self.steps += 1

    def health(self) -> dict:
        now = time.monotonic()
        with self.cond:  # held briefly: the engine thread takes it to start every step
            times, sizes, time_rows = list(self.step_ms), list(self.batch_sizes), self.step_model.max_rows()
            streams = {s.id: {"lag_ms": round(s.lag_ms(now), 1), "backlog_ms": s.backlog_steps() * STEP_MS,
                              "delay_ms": s.delay_ms} for s in self.streams}
            figures = self.step_model.figures()
        times.sort()
        return {
            "alive": self.thread.is_alive() and self.dead is None,
            "error": None if self.dead is None else str(self.dead),
            "last_step_at": self.last_step_at,  # time.time() of the last completed step, None before any
            "steps": self.steps,
            "step_ms_p50": _pct(times, 50),
            "step_ms_p95": _pct(times, 95),
            "batch_mean": float(np.mean(sizes)) if sizes else 0.0,
            "active_streams": len(streams),
            "capacity": min(self.slots, time_rows),  # what the engine admits
            "capacity_memory": self.slots,  # stream caches that fit in GPU memory
            "capacity_time": time_rows,  # rows whose step stays within the budget
            "step_budget_ms": self.step_model.budget_ms,
            "step_ms_by_batch": figures,
            "streams": streams,
        }


def _pct(sorted_values, q):
    if not sorted_values:
        return None
    return float(sorted_values[min(len(sorted_values) - 1, int(round(q / 100 * (len(sorted_values) - 1))))])
