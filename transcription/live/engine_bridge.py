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

import numpy as np
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull

from meetings.segments import SegmentRules, rules_from_settings, words_pack
from transcription import engine_host

from . import conf
from .events import EngineHealth, WorkerAudio, WorkerBatch, WorkerClose, WorkerOpen
from .lines import Caption, LineBreaker

log = logging.getLogger(__name__)
OnEvent = Callable[[str, dict], None]
FULL_RETRIES = 200  # 10 s of waiting for room in a caption worker's channel before its messages are dropped
# A caption worker reports health twice a second: four reports missed in a row, it is gone. (The host
# judges only after an on-time tick of its own loop, so a busy server does not take a late read for silence.)
SILENT_WORKER_S = 2.0
STALE_CONNECTION_TRIES = 3


class EngineUnavailable(Exception):
    """Captions cannot run; the message is written for the meeting's host."""

    code = "engine_unavailable"


class EngineAtCapacity(EngineUnavailable):
    code = "engine_busy"


AT_CAPACITY = (
    "Live captions are off: the speech engine is already captioning as many meetings as it can. "
    "Your audio is still recorded. Try again in a few minutes, or ask an administrator to add capacity."
)
NO_WORKER = (
    "Live captions are off: no caption worker answered. Your audio is still recorded. "
    "An administrator should check that `manage.py run_caption_worker` is running."
)
STALL_LAG_MS = 3000  # audio waiting this long for the engine: captions are visibly behind
CLOSE_TIMEOUT_S = 30


LIVE_MAX_CHARS = 90  # about two lines of a caption display: a longer line becomes final sooner


def live_rules() -> SegmentRules:
    """The site's segment rules, with lines no longer than a caption display shows."""
    rules = rules_from_settings()
    return SegmentRules(pause_ms=rules.pause_ms, max_ms=rules.max_ms, max_chars=min(rules.max_chars, LIVE_MAX_CHARS))


class EngineStream:
    """A stream on this process's engine, turned into caption lines (`delta` and `final` events).

    Used by the host's consumer when the engine runs in the server process, and by caption workers.
    Engine events arrive on the engine thread and are handed to the event loop; everything else here
    runs on the loop and never blocks it (push only appends to the stream's buffer).
    """

    QUIET_FLUSH_S = 1.5  # no new words for this long: the partial line becomes final

    def __init__(self, *, delay_ms: int, on_event: OnEvent):
        self.delay_ms = delay_ms
        self.on_event = on_event
        self.lines = LineBreaker(live_rules())
        self._engine = self._stream = self._flusher = None
        self._last_text_at = time.monotonic()

    async def open(self) -> None:
        from transcription.engine import EngineAtCapacity as Full
        from transcription.engine import EngineError

        try:
            # The registry is read from the database, and a load takes seconds: a thread of its own.
            engine = await database_sync_to_async(engine_host.get_engine, thread_sensitive=False)()
        except engine_host.EngineUnavailable as exc:
            raise EngineUnavailable(f"Live captions are off. {exc} Your audio is still recorded.") from exc

        inbox = engine_inbox()

        def from_engine_thread(event) -> None:
            inbox.put(self._engine_event, event)

        try:
            self._stream = engine.open_stream(self.delay_ms, on_event=from_engine_thread)
        except Full as exc:
            raise EngineAtCapacity(AT_CAPACITY) from exc
        except EngineError as exc:
            raise EngineUnavailable(f"Live captions are off: {exc} Your audio is still recorded.") from exc
        self._engine = engine
        self._flusher = asyncio.create_task(self._flush_when_quiet())

    def _engine_event(self, event) -> None:
        if event.kind == "delta":
            self._last_text_at = time.monotonic()
            for caption in self.lines.add(event.text, event.start_ms, event.end_ms):
                self._publish(caption, event.made_at)
        elif event.kind == "final":
            self._flush()
        elif event.kind == "error":
            self.on_event("failed", {"message": event.message})

    def _publish(self, caption: Caption, made_at: float | None = None) -> None:
        data = {"text": caption.text, "start_ms": caption.start_ms, "end_ms": caption.end_ms, "made_at": made_at or time.time()}
        if caption.final:
            data["words"] = words_pack(caption.words)
        self.on_event("final" if caption.final else "delta", data)

    def _flush(self) -> None:
        for caption in self.lines.flush():
            self._publish(caption)

    async def _flush_when_quiet(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if self.lines.text and time.monotonic() - self._last_text_at > self.QUIET_FLUSH_S:
                self._flush()

    async def feed(self, pcm: bytes, received_at: float | None = None) -> None:
        from transcription.engine import EngineError

        try:
            self._stream.push(np.frombuffer(pcm, dtype="<i2"))
        except EngineError:
            pass  # the stream failed; its error event already told the host

    async def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Flush: the last words become finals before this returns."""
        if self._stream is None:
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._stream.close_nowait()), timeout)
        except Exception:  # timed out or the engine failed: keep what was captioned, drop the rest
            log.exception("live stream %s did not finish cleanly", self._stream.id)
            self._stream.abort()
        finally:
            self._flusher.cancel()
            self._flush()

    def abort(self) -> None:
        if self._stream is not None:
            self._stream.abort()
            self._flusher.cancel()

    def health(self, readings: dict | None = None) -> EngineHealth:
        """`readings`: engine health already read this round, by engine, shared by the streams of a caption
        worker (one reading covers all of an engine's streams; one per stream was quadratic in streams)."""
        if self._engine is None:
            return {"ready": False, "last_step_age_ms": None, "lag_ms": 0, "stalled": False}
        if readings is None:
            info = self._engine.health()
        else:
            if id(self._engine) not in readings:
                readings[id(self._engine)] = self._engine.health()
            info = readings[id(self._engine)]
        lag = int(info["streams"].get(self._stream.id, {}).get("lag_ms", 0))
        age = None if info["last_step_at"] is None else int((time.time() - info["last_step_at"]) * 1000)
        health: EngineHealth = {"ready": True, "last_step_age_ms": age, "lag_ms": lag, "stalled": False}
        if not info["alive"]:
            health.update(stalled=True, message="The speech engine has stopped; captions cannot continue. Your audio is still recorded.")
        elif lag > STALL_LAG_MS:
            health.update(stalled=True, message=f"The speech engine is {lag / 1000:.0f} s behind; captions are delayed.")
        return health


class EngineInbox:
    """Engine events on their way to one event loop: one wake-up of the loop for all the events of a step.

    A step makes a token for every stream; one `call_soon_threadsafe` each (a write to the loop's wake-up
    pipe, with the GIL taken) was 150 system calls a step on the engine thread, for 150 streams.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.lock = threading.Lock()
        self.waiting: list[tuple[Callable, object]] = []

    def put(self, handler: Callable, event) -> None:
        with self.lock:
            self.waiting.append((handler, event))
            wake = len(self.waiting) == 1  # otherwise a wake-up is already on its way
        if wake:
            self.loop.call_soon_threadsafe(self.deliver)

    def deliver(self) -> None:
        with self.lock:
            events, self.waiting = self.waiting, []
        for handler, event in events:
            try:
                handler(event)
            except Exception:  # one stream's bad event must not cost the others theirs
                log.exception("engine event not handled")


class PerLoop:
    """This process's objects that belong to one event loop (tests run many loops), by key; forgotten
    with their loop."""

    def __init__(self):
        self._objects: dict[asyncio.AbstractEventLoop, dict] = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            return self._objects.get(asyncio.get_running_loop(), {}).get(key)

    def put(self, key, value):
        with self._lock:
            for old in [loop for loop in self._objects if loop.is_closed()]:
                del self._objects[old]
            self._objects.setdefault(asyncio.get_running_loop(), {})[key] = value
        return value


PER_LOOP = PerLoop()


def engine_inbox() -> EngineInbox:
    """The running loop's inbox for engine events."""
    return PER_LOOP.get(EngineInbox) or PER_LOOP.put(EngineInbox, EngineInbox(asyncio.get_running_loop()))


class RemoteStream:
    """A stream on a caption worker process, reached through the channel layer.

    The open request goes to the shared worker channel, where any idle worker takes it; the worker
    answers with its own channel, and audio goes there so that one stream stays on one worker.
    Everything to and from the worker passes through this process's `WorkerLink`, which batches it.
    """

    def __init__(self, *, delay_ms: int, on_event: OnEvent, layer):
        self.delay_ms = delay_ms
        self.on_event = on_event
        self.layer = layer
        self.stream_id = uuid.uuid4().hex
        self._link: WorkerLink | None = None
        self._worker: str | None = None
        self._opened: asyncio.Future | None = None
        self._closed: asyncio.Future | None = None
        self._health: EngineHealth = {"ready": False, "last_step_age_ms": None, "lag_ms": 0, "stalled": False}
        self._health_at = time.monotonic()
        self._dropped = 0

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._opened, self._closed = loop.create_future(), loop.create_future()
        self._link = await worker_link(self.layer)
        self._link.streams[self.stream_id] = self
        request: WorkerOpen = {"type": "caption.open", "stream_id": self.stream_id, "reply_channel": self._link.channel, "delay_ms": self.delay_ms}
        try:
            await layer_send(self.layer, conf.worker_channel(), request)
            self._worker = await asyncio.wait_for(self._opened, conf.worker_open_seconds())
        except TimeoutError:
            self._stop_reading()
            raise EngineUnavailable(NO_WORKER) from None
        except BaseException:
            self._stop_reading()
            raise
        self._health_at = time.monotonic()

    def _stop_reading(self) -> None:
        if self._link is not None:
            self._link.streams.pop(self.stream_id, None)

    def handle(self, message: dict) -> None:
        if message.get("stream_id") != self.stream_id:
            return
        kind = message["kind"]
        if kind == "opened" and not self._opened.done():
            self._opened.set_result(message["worker_channel"])
        elif kind == "refused" and not self._opened.done():
            exc = EngineAtCapacity if message.get("code") == "engine_busy" else EngineUnavailable
            self._opened.set_exception(exc(message.get("message") or AT_CAPACITY))
        elif kind == "health":
            self._health, self._health_at = message["health"], time.monotonic()
        elif kind == "closed" and not self._closed.done():
            self._closed.set_result(True)
        elif kind in ("delta", "final", "failed"):
            self._health_at = time.monotonic()
            self.on_event(kind, {k: message[k] for k in ("text", "start_ms", "end_ms", "words", "message", "made_at") if k in message})

    async def feed(self, pcm: bytes, received_at: float | None = None) -> None:
        audio: WorkerAudio = {"type": "caption.audio", "stream_id": self.stream_id, "pcm": pcm}
        if received_at is not None:
            audio["at"] = received_at
        await self._link.send(self._worker, audio)

    async def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Ask the worker to finish the stream and wait for its last lines (the worker says `closed`)."""
        try:
            if self._worker:
                message: WorkerClose = {"type": "caption.close", "stream_id": self.stream_id}
                await self._link.send(self._worker, message)  # behind the stream's last audio, never before it
                await asyncio.wait_for(self._closed, timeout)
        except TimeoutError:
            log.warning("caption worker did not finish stream %s within %ss", self.stream_id, timeout)
        finally:
            self._stop_reading()

    @property
    def worker(self) -> str | None:
        """The caption worker's channel serving this stream, once open."""
        return self._worker

    def gone(self) -> bool:
        """The worker has said nothing (no health, no caption) for too long: it died or lost its Redis. Or
        some of this stream's audio never reached it (Redis restarted, or the worker took nothing for
        10 s): its captions would skip that audio, which a reopened stream hears again."""
        return self._worker is not None and (time.monotonic() - self._health_at > SILENT_WORKER_S or self._dropped > 0)

    async def keepalive(self) -> None:
        """Tell the worker the host is still there while no audio goes to it (paused)."""
        await self._tell_worker("caption.keepalive")

    async def abandon(self) -> None:
        """Stop listening to a worker taken for gone, and ask it to free the stream in case it is only slow."""
        self._stop_reading()
        await self._tell_worker("caption.release")
        self._worker = None

    async def _tell_worker(self, kind: str) -> None:
        if self._worker:
            message: WorkerClose = {"type": kind, "stream_id": self.stream_id}
            await self._link.send(self._worker, message)

    def health(self) -> EngineHealth:
        health = dict(self._health)
        silent_s = time.monotonic() - self._health_at
        if silent_s > SILENT_WORKER_S:
            health.update(stalled=True, message="The caption worker has stopped answering.")
        if self._dropped:
            health["message"] = "The caption worker is falling behind; some audio was not captioned."
        return health


class WorkerLink:
    """One process's traffic with the caption workers, for all of its streams together.

    One channel-layer message per frame and per caption meant about 4,000 Redis round trips a second
    each way for 150 meetings, and a caption worker spent most of its time on them. Here the messages
    for a worker wait in a queue while a send to it is under way, then go as one batch. A send alone
    is too quick to gather much: a worker still took one message per frame, and channels_redis reads
    a channel one message at a time (four round trips each), so at ~1,000 frames a second its channel
    filled and frames waited 100-300 ms for room. So the first message of a batch also waits
    LINGER_S for others: the worker's engine steps every 80 ms, and a frame that came a little
    earlier would only wait for the step instead. A stream's messages keep their order (one queue
    and one sender per worker). Replies come to one channel of this process, read by a task of its
    own (a host consumer may be busy awaiting open() or close() and must not have to dispatch the
    very answer it waits for), and are handed to their streams by id.
    """

    MAX_BATCH = 64  # frames of ~2.5 kB: a message stays small for Redis
    MAX_WAITING = 1024  # messages queued for one worker before feeders wait (holding up their sockets' reads)
    LINGER_S = 0.02  # how long a batch's first message waits for others

    def __init__(self, layer, channel: str):
        self.layer, self.channel = layer, channel
        self.streams: dict[str, RemoteStream] = {}
        self.queues: dict[str, list[dict]] = {}
        self.senders: dict[str, asyncio.Task] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in channel_items(self.layer, self.channel, "caption worker replies"):
            stream = self.streams.get(event.get("stream_id"))
            if stream is None:
                continue
            try:
                stream.handle(event)
            except Exception:  # one odd reply must not end the stream's captions
                log.exception("caption worker reply not understood: %s", event.get("kind"))

    async def send(self, worker: str, message: dict) -> None:
        queue = self.queues.setdefault(worker, [])
        # A page resending minutes of audio after a drop fills the queue at once: wait for room (this
        # holds up the socket's reads, so the page's own send buffer takes the rest) rather than drop.
        while len(queue) >= self.MAX_WAITING:
            await asyncio.sleep(0.02)
        queue.append(message)
        if worker not in self.senders:
            self.senders[worker] = asyncio.create_task(self._drain(worker))

    async def _drain(self, worker: str) -> None:
        queue = self.queues[worker]
        try:
            while queue:
                if len(queue) < self.MAX_BATCH:
                    await asyncio.sleep(self.LINGER_S)
                batch = queue[:self.MAX_BATCH]
                del queue[:self.MAX_BATCH]
                if not await self._send_batch(worker, batch):
                    # The worker takes nothing (gone, or stuck): what waits for it would only wait longer.
                    self._dropped(batch + queue)
                    queue.clear()
        finally:
            del self.senders[worker]

    async def _send_batch(self, worker: str, batch: list[dict]) -> bool:
        for _ in range(FULL_RETRIES):
            try:
                message: WorkerBatch = {"type": "caption.batch", "items": batch}
                await layer_send(self.layer, worker, message)
                return True
            except ChannelFull:
                await asyncio.sleep(0.05)
            except Exception as exc:
                log.warning("caption worker %s not reached: %r", worker, exc)
                return False
        return False

    def _dropped(self, messages: list[dict]) -> None:
        for message in messages:
            stream = self.streams.get(message["stream_id"])
            if stream is not None and message["type"] == "caption.audio":
                stream._dropped += 1


async def worker_link(layer) -> WorkerLink:
    """The running loop's `WorkerLink` on `layer`."""
    link = PER_LOOP.get((WorkerLink, layer))
    if link is None or link.reader.done():
        # The default prefix matters: channels_redis reads all of a process's own channels through one
        # queue, and a channel with another prefix would wait behind the other reads forever.
        channel = await layer.new_channel()
        link = PER_LOOP.get((WorkerLink, layer))  # another stream may have made it while this one waited
        if link is None or link.reader.done():
            link = PER_LOOP.put((WorkerLink, layer), WorkerLink(layer, channel))
    return link


BATCHES = ("caption.batch", "engine.batch")  # events.WorkerBatch, events.WorkerEvents


async def channel_items(layer, channel: str, reader: str):
    """Every message on `channel`, a batch's items one by one. A channel layer that fails for a while
    (Redis restarting) is read again twice a second: the channel's name stays good, and the process's
    streams (and a caption worker's engine) are still there when it comes back."""
    failing = False
    while True:
        try:
            message = await layer.receive(channel)
        except Exception as exc:
            if not failing:
                log.warning("%s cannot read %s, retrying: %r", reader, channel, exc)
            failing = True
            await asyncio.sleep(0.5)
            continue
        failing = False
        for item in (message.get("items") or ()) if message.get("type") in BATCHES else (message,):
            yield item


async def layer_send(layer, channel: str, message: dict) -> None:
    """`layer.send`, tried again at once where a connection fails: after Redis restarts, every connection
    the pool kept fails its first command, and a caption worker's `opened` lost that way would leave its
    host waiting for an answer that never comes. A Redis still down fails every try; ChannelFull is the
    caller's to handle."""
    for attempt in range(STALE_CONNECTION_TRIES):
        try:
            return await layer.send(channel, message)
        except ChannelFull:
            raise
        except Exception:
            if attempt == STALE_CONNECTION_TRIES - 1:
                raise
            await asyncio.sleep(0.05)


async def tell_worker(layer, worker: str, stream_id: str, kind: str) -> None:
    """Send a stream's caption worker `caption.release` or `caption.keepalive`. Best effort: a worker that is
    gone or full of audio frees the stream by itself (worker.ORPHAN_AFTER_S)."""
    message: WorkerClose = {"type": kind, "stream_id": stream_id}
    try:
        await layer_send(layer, worker, message)
    except Exception as exc:
        log.info("caption worker %s not told %s: %r", worker, kind, exc)
