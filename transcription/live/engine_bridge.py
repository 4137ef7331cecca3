"""The only place live captions touch the speech engine, in this process or in a caption worker.

Both kinds of stream look the same to the host's consumer: `await open()`, `await feed(pcm)`,
`await close()`, `health()`, and `on_event(kind, data)` called on the event loop with kind
`delta`, `final` or `failed`. The engine steps on its own thread; its callbacks reach the loop
through `call_soon_threadsafe` and never run consumer code on the engine's thread.
"""
import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from . import conf
from .events import EngineHealth, WorkerAudio, WorkerClose, WorkerOpen

log = logging.getLogger(__name__)
OnEvent = Callable[[str, dict], None]
STALL_AFTER_S = 3.0  # audio fed but no engine step for this long: the engine is stalled


class EngineUnavailable(Exception):
    """Captions cannot run; the message is written for the meeting's host."""

    code = "engine_unavailable"


class EngineAtCapacity(EngineUnavailable):
    code = "engine_busy"


NO_MODEL = (
    "Live captions are off: no speech model is configured on this server. Your audio is still recorded "
    "and can be transcribed later. An administrator can set SCRIBE_ASR_MODEL_DIR to a model folder."
)
AT_CAPACITY = (
    "Live captions are off: the speech engine is already captioning as many meetings as it can. "
    "Your audio is still recorded. Try again in a few minutes, or ask an administrator to add capacity."
)
NO_WORKER = (
    "Live captions are off: no caption worker answered. Your audio is still recorded. "
    "An administrator should check that `manage.py run_caption_worker` is running."
)

_engine = None
_engine_error: str | None = None
_engine_lock = threading.Lock()


def local_engine():
    """The process's engine, loaded once from settings.ASR_MODEL_DIR. Slow the first time: call off the loop."""
    global _engine, _engine_error
    with _engine_lock:
        if _engine is not None:
            return _engine
        if not settings.ASR_MODEL_DIR:
            raise EngineUnavailable(NO_MODEL)
        if _engine_error:
            raise EngineUnavailable(_engine_error)
        from transcription import engine as asr

        try:
            _engine = asr.load_engine(settings.ASR_MODEL_DIR)
        except Exception as exc:  # the engine's own error type, or a broken install: both end here
            log.exception("speech engine failed to load from %s", settings.ASR_MODEL_DIR)
            _engine_error = f"Live captions are off: the speech model could not be loaded ({exc}). Your audio is still recorded."
            raise EngineUnavailable(_engine_error) from exc
        return _engine


class LocalStream:
    """A stream on this process's engine. feed() hands audio to a one-thread lane, in order."""

    def __init__(self, *, delay_ms: int, on_event: OnEvent):
        self.delay_ms = delay_ms
        self.on_event = on_event
        self._stream = None
        self._lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="caption-feed")
        self._fed_ms = 0
        self._last_event_at = time.monotonic()
        self._last_fed_at = 0.0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()

        def callback(kind: str, data: dict) -> None:  # runs on the engine's thread
            loop.call_soon_threadsafe(self._deliver, kind, data)

        engine = await loop.run_in_executor(self._lane, local_engine)
        from transcription import engine as asr

        def open_stream():
            try:
                return engine.open_stream(delay_ms=self.delay_ms, on_event=callback)
            except asr.EngineBusy as exc:
                raise EngineAtCapacity(AT_CAPACITY) from exc
            except asr.EngineError as exc:
                raise EngineUnavailable(f"Live captions are off: {exc}. Your audio is still recorded.") from exc

        self._stream = await loop.run_in_executor(self._lane, open_stream)

    def _deliver(self, kind: str, data: dict) -> None:
        self._last_event_at = time.monotonic()
        self.on_event(kind, data)

    async def feed(self, pcm: bytes) -> None:
        self._fed_ms += len(pcm) // 32
        self._last_fed_at = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(self._lane, self._stream.feed, pcm)

    async def close(self) -> None:
        """Flush: the last words become finals before this returns."""
        if self._stream is not None:
            await asyncio.get_running_loop().run_in_executor(self._lane, self._stream.close)
        self._lane.shutdown(wait=False)

    def health(self) -> EngineHealth:
        info = self._stream.health() if self._stream is not None else {}
        age = info.get("last_step_age_ms")
        lag = int(info.get("lag_ms", 0))
        waiting = self._last_fed_at and self._last_fed_at - self._last_event_at > 0
        stalled = bool(info.get("stalled")) or bool(waiting and time.monotonic() - self._last_event_at > STALL_AFTER_S and lag > 0)
        return {"ready": self._stream is not None, "last_step_age_ms": age, "lag_ms": lag, "stalled": stalled}


class RemoteStream:
    """A stream on a caption worker process, reached through the channel layer.

    The open request goes to the shared worker channel, where any idle worker takes it; the worker
    answers with its own channel, and audio goes there so that one stream stays on one worker.
    Replies arrive at the host consumer, which passes them to handle().
    """

    OPEN_TIMEOUT_S = 20

    def __init__(self, *, delay_ms: int, on_event: OnEvent, layer, reply_channel: str):
        self.delay_ms = delay_ms
        self.on_event = on_event
        self.layer = layer
        self.reply_channel = reply_channel
        self.stream_id = uuid.uuid4().hex
        self._worker: str | None = None
        self._opened: asyncio.Future | None = None
        self._health: EngineHealth = {"ready": False, "last_step_age_ms": None, "lag_ms": 0, "stalled": False}
        self._health_at = time.monotonic()
        self._dropped = 0

    async def open(self) -> None:
        self._opened = asyncio.get_running_loop().create_future()
        request: WorkerOpen = {"type": "caption.open", "stream_id": self.stream_id, "reply_channel": self.reply_channel, "delay_ms": self.delay_ms}
        await self.layer.send(conf.worker_channel(), request)
        try:
            self._worker = await asyncio.wait_for(self._opened, self.OPEN_TIMEOUT_S)
        except TimeoutError:
            raise EngineUnavailable(NO_WORKER) from None
        self._health_at = time.monotonic()

    def handle(self, message: dict) -> None:
        if message.get("stream_id") != self.stream_id:
            return
        kind = message["kind"]
        if kind == "opened" and self._opened and not self._opened.done():
            self._opened.set_result(message["worker_channel"])
        elif kind == "refused" and self._opened and not self._opened.done():
            exc = EngineAtCapacity if message.get("code") == "engine_busy" else EngineUnavailable
            self._opened.set_exception(exc(message.get("message") or AT_CAPACITY))
        elif kind == "health":
            self._health, self._health_at = message["health"], time.monotonic()
        elif kind in ("delta", "final", "failed"):
            self._health_at = time.monotonic()
            self.on_event(kind, {k: message[k] for k in ("text", "start_ms", "end_ms", "message") if k in message})

    async def feed(self, pcm: bytes) -> None:
        audio: WorkerAudio = {"type": "caption.audio", "stream_id": self.stream_id, "pcm": pcm}
        try:
            await self.layer.send(self._worker, audio)
        except Exception:  # ChannelFull: the worker is behind; its health reports the lag
            self._dropped += 1

    async def close(self) -> None:
        if self._worker:
            message: WorkerClose = {"type": "caption.close", "stream_id": self.stream_id}
            await self.layer.send(self._worker, message)

    def health(self) -> EngineHealth:
        health = dict(self._health)
        silent_s = time.monotonic() - self._health_at
        if silent_s > STALL_AFTER_S * 2:
            health.update(stalled=True, message="The caption worker has stopped answering.")
        if self._dropped:
            health["message"] = "The caption worker is falling behind; some audio was not captioned."
        return health
