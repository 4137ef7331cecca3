"""One live stream: audio buffered from any thread, stepped only by the engine thread.

Audio positions are counted in the padded signal the model was trained on: `n_left_pad_steps` steps of
silence, the pushed audio, and on close enough silence to flush the delay (mistral-common's right pad).
"""
import collections
import concurrent.futures
import queue
import threading
import time

import numpy as np

from . import audio as A
from .errors import StreamClosed
from .events import Delta, Error, Final, TokenTime, Transcript


class StreamState:
    """Engine-side state. Fields under `lock` are touched by callers; the rest only by the engine thread."""

    def __init__(self, stream_id: int, delay_ms: int, spec, lock: threading.Condition, on_event):
        self.id = stream_id
        self.delay_ms = delay_ms
        self.delay_steps = A.delay_steps(delay_ms)
        self.spec = spec
        self.prompt = spec.prompt(self.delay_steps)
        self.lock = lock
        self.on_event = on_event
        self.result: concurrent.futures.Future = concurrent.futures.Future()
        # Under lock: the padded signal from `buf_start` on (starts LOOK_BACK samples before position 0).
        self.buf = np.zeros(A.LOOK_BACK + spec.n_left_pad_steps * A.STEP_SAMPLES, np.float32)
        self.buf_start = -A.LOOK_BACK
        self.pushed = 0  # samples of real audio
        self.arrivals: collections.deque = collections.deque()  # (padded sample end, wall time)
        self.closed = False
        self.last_pos: int | None = None  # last decoder position to run, known once closed
        # Engine thread only.
        self.slot = -1
        self.pos = 0
        self.token = self.prompt[0]
        self.tokens: list[TokenTime] = []
        self.pending: list[int] = []  # text tokens whose bytes do not yet end on a UTF-8 boundary
        self.failed = False

    # --- caller side (lock held by the caller of these) ---
    def append(self, pcm: np.ndarray, now: float) -> None:
        if self.closed:
            raise StreamClosed(f"Stream {self.id} is closed; open a new stream to send more audio.")
        self.buf = np.concatenate([self.buf, pcm])
        self.pushed += len(pcm)
        self.arrivals.append((self.buf_start + len(self.buf), now))

    def finish(self, now: float) -> None:
        """Right-pad like mistral-common: to a whole step, then delay + 1 + 10 steps of silence."""
        if self.closed:
            return
        self.closed = True
        whole = -self.pushed % A.STEP_SAMPLES
        pad = whole + self.spec.right_pad_steps(self.delay_steps) * A.STEP_SAMPLES
        self.buf = np.concatenate([self.buf, np.zeros(pad, np.float32)])
        self.arrivals.append((self.buf_start + len(self.buf), now))
        n_steps = self.spec.n_left_pad_steps + (self.pushed + whole) // A.STEP_SAMPLES + self.spec.right_pad_steps(self.delay_steps)
        # generate() stops at max_length = n_steps tokens in all, so the last audio step is never fed.
        self.last_pos = n_steps - 2

    # --- engine side (lock held) ---
    def ready(self) -> bool:
        if self.failed or (self.last_pos is not None and self.pos > self.last_pos):
            return False
        need = A.STEP_SAMPLES * (self.pos + 1) + A.LOOK_AHEAD
        return self.buf_start + len(self.buf) >= need

    def take_window(self) -> tuple[np.ndarray, float]:
        """Samples for the step at `pos`, and when they became available; drops audio no longer needed."""
        start = A.STEP_SAMPLES * self.pos - A.LOOK_BACK
        i = start - self.buf_start
        window = self.buf[i:i + A.STEP_WINDOW]
        assert window.shape == (A.STEP_WINDOW,), window.shape
        need = start + A.STEP_WINDOW
        while len(self.arrivals) > 1 and self.arrivals[0][0] < need:
            self.arrivals.popleft()
        ready_at = self.arrivals[0][1] if self.arrivals else time.monotonic()
        # Keep from the next step's look-back on.
        drop = i + A.STEP_SAMPLES
        self.buf = self.buf[drop:]
        self.buf_start += drop
        return window, ready_at

    def skip_to(self, pos: int) -> None:
        """Start at decoder position `pos`: the caches of the steps before it were copied in (prefix.py),
        which is only right for steps whose audio is the left pad's silence and whose token is the prompt's."""
        if pos <= self.pos:
            return
        assert pos < len(self.prompt) and pos <= self.spec.n_left_pad_steps - 1, (pos, len(self.prompt))
        drop = A.STEP_SAMPLES * (pos - self.pos)
        self.buf = self.buf[drop:]
        self.buf_start += drop
        self.pos = pos

    def backlog_steps(self) -> int:
        end = self.buf_start + len(self.buf)
        return max(0, (end - A.LOOK_AHEAD) // A.STEP_SAMPLES - self.pos)

    @property
    def done(self) -> bool:
        return self.last_pos is not None and self.pos > self.last_pos

    # --- engine side, after a step ---
    def input_token(self) -> int:
        return self.prompt[self.pos] if self.pos < len(self.prompt) else self.token

    def accept(self, token: int, lag_ms: float) -> None:
        """Record the token produced at `pos` and advance."""
        first_out = len(self.prompt) - 1
        if self.pos >= first_out:
            k = self.pos - first_out  # the k-th output covers audio [80k, 80k + 80) ms
            waiting = len(self.pending)
            text = self._text_for(token)
            self.tokens.append(TokenTime(token, "" if token in self.spec.special_ids else text, k * A.STEP_MS, (k + 1) * A.STEP_MS))
            if text:
                span = self.tokens[-(waiting + 1):]
                self.emit(Delta(self.id, text, span[0].start_ms, span[-1].end_ms, lag_ms))
            self.token = token
        self.pos += 1

    def _text_for(self, token: int) -> str:
        if token in self.spec.special_ids:
            return ""
        self.pending.append(token)
        text = self.spec.decode(self.pending)
        if text.endswith("\ufffd"):
            return ""  # a multi-byte character split across tokens: wait for the rest
        self.pending = []
        return text

    def transcript(self) -> Transcript:
        """The last 10 tokens cover the right pad; their times are clamped to the end of the audio."""
        text = self.spec.decode([t.token_id for t in self.tokens if t.token_id not in self.spec.special_ids])
        end = self.pushed * 1000 // A.SAMPLE_RATE
        tokens = tuple(TokenTime(t.token_id, t.text, min(t.start_ms, end), min(t.end_ms, end)) for t in self.tokens)
        return Transcript(text=text, tokens=tokens, delay_ms=self.delay_ms, duration_ms=end)

    def complete(self) -> None:
        final = Final(self.id, self.transcript())
        self.emit(final)
        self.result.set_result(final.transcript)

    def fail(self, message: str, exc: BaseException) -> None:
        self.failed = True
        self.emit(Error(self.id, message))
        if not self.result.done():
            self.result.set_exception(exc)

    def emit(self, event) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken callback must not take the engine thread down
            pass

    def lag_ms(self, now: float) -> float:
        """How long the oldest audio that is ready but not yet stepped has been waiting."""
        if not self.ready() or not self.arrivals:
            return 0.0
        need = A.STEP_SAMPLES * (self.pos + 1) + A.LOOK_AHEAD
        for end, at in self.arrivals:
            if end >= need:
                return max(0.0, (now - at) * 1000.0)
        return 0.0


class Stream:
    """A caller's handle on a live stream. Thread-safe; every method returns quickly except `close`.

    Events go to `on_event` (called on the engine thread: do not block in it) or, when no callback was
    given, to the thread-safe queue `stream.events`.
    """

    def __init__(self, engine, state: StreamState):
        self._engine = engine
        self._state = state
        self.events: queue.SimpleQueue | None = None

    @property
    def id(self) -> int:
        return self._state.id

    @property
    def delay_ms(self) -> int:
        return self._state.delay_ms

    def push(self, pcm: np.ndarray) -> None:
        """Queue 16 kHz mono PCM (int16 or float32, any length)."""
        self._engine._push(self._state, A.to_float32(pcm))

    def close_nowait(self) -> concurrent.futures.Future:
        """End of audio. The future resolves to the final `Transcript` (for asyncio: `asyncio.wrap_future`)."""
        self._engine._close(self._state)
        return self._state.result

    def close(self, timeout: float | None = None) -> str:
        """End of audio; blocks until the rest is transcribed and returns the final text."""
        return self.close_nowait().result(timeout).text

    def abort(self) -> None:
        """Drop the stream now, without transcribing what is still buffered."""
        self._engine._abort(self._state)
