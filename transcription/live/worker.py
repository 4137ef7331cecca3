"""A caption worker: the speech engine in its own process, serving live streams over the channel layer.

Run one per GPU with `manage.py run_caption_worker`. Open requests go to one shared channel, so any
worker with a free slot takes a stream; a worker that is full passes the request on to the others
(a few hops at most), then refuses in words. Once open, a stream's audio goes to the worker's own
channel, so a stream stays on one engine. Caption lines and health go back to the host's consumer.
"""
import asyncio
import logging
import time
from collections import deque

import numpy as np

from . import conf
from .engine_bridge import EngineStream, EngineUnavailable, channel_items, layer_send
from .events import WorkerEvent, WorkerEvents

log = logging.getLogger(__name__)
MAX_HOPS = 3  # a full worker passes an open request on at most this many times
HEALTH_EVERY_S = 0.5  # the host takes a worker silent for 2 s for dead (engine_bridge.SILENT_WORKER_S)
ORPHAN_AFTER_S = 15  # no audio, keepalive or close for this long (hosts send one every beat): the host's server is gone
ACCOUNT_EVERY_S = 10  # how often a busy worker logs where its time goes


class Latencies:
    """Recent figures of one kind, in ms, summed up and forgotten by `summary()`."""

    def __init__(self, keep: int = 8192):
        self.values: deque[float] = deque(maxlen=keep)

    def add(self, ms: float) -> None:
        self.values.append(ms)

    def summary(self) -> str:
        if not self.values:
            return "none"
        values = np.fromiter(self.values, float)
        self.values.clear()
        p50, p95 = np.percentile(values, [50, 95])
        return f"p50 {p50:.0f} / p95 {p95:.0f} / max {values.max():.0f} ms over {len(values)}"


class Served:
    def __init__(self, stream: EngineStream, reply_channel: str):
        self.stream, self.reply_channel = stream, reply_channel
        self.last_heard = time.monotonic()


class CaptionWorker:
    def __init__(self, layer):
        self.layer = layer
        self.streams: dict[str, Served] = {}
        self.channel = ""
        self.outbox: asyncio.Queue = asyncio.Queue()  # one sender keeps each stream's events in order
        # Where a frame's time goes before the engine: from its host's server to this loop, and this
        # loop's own lateness (a busy loop delays every frame and caption it moves).
        self.inbound, self.loop_late = Latencies(), Latencies()

    async def serve(self, *, ready: asyncio.Event | None = None) -> None:
        self.channel = await self.layer.new_channel()
        log.info("caption worker listening on %s and %s", conf.worker_channel(), self.channel)
        if ready:
            ready.set()
        tasks = [asyncio.create_task(self.listen(conf.worker_channel())), asyncio.create_task(self.listen(self.channel)),
                 asyncio.create_task(self.report()), asyncio.create_task(self.send_replies()), asyncio.create_task(self.watch_loop())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for served in list(self.streams.values()):
                served.stream.abort()

    async def listen(self, channel: str) -> None:
        # A server's messages come in batches (engine_bridge.WorkerLink); a single one is also understood.
        async for item in channel_items(self.layer, channel, "caption worker"):
            try:
                await self.handle(item)
            except Exception:  # one bad message must not stop the worker
                log.exception("caption worker could not handle %s", item.get("type"))

    async def handle(self, message: dict) -> None:
        kind, stream_id = message.get("type"), message.get("stream_id", "")
        if kind == "caption.open":
            return await self.open(message)
        served = self.streams.get(stream_id)
        if served is None:
            return
        served.last_heard = time.monotonic()
        if kind == "caption.audio":
            if "at" in message:
                self.inbound.add((time.time() - message["at"]) * 1000)
            await served.stream.feed(message["pcm"])
        elif kind == "caption.close":
            del self.streams[stream_id]
            # Finishing a stream waits for the engine; the other streams' audio on this channel must not.
            asyncio.create_task(self.finish(stream_id, served))
        elif kind == "caption.release":
            self.drop(stream_id, "its host let go of it")

    def drop(self, stream_id: str, why: str) -> None:
        """Free the stream's engine slot at once, without its last words."""
        served = self.streams.pop(stream_id, None)
        if served is not None:
            log.info("caption stream %s released: %s", stream_id, why)
            served.stream.abort()

    async def finish(self, stream_id: str, served: Served) -> None:
        try:
            await served.stream.close()
        except Exception:
            log.exception("caption stream %s did not close cleanly", stream_id)
        self.reply(served.reply_channel, stream_id, "closed")

    async def open(self, request: dict) -> None:
        stream_id, reply = request["stream_id"], request["reply_channel"]
        stream = EngineStream(delay_ms=request["delay_ms"], on_event=lambda kind, data: self.reply(reply, stream_id, kind, **data))
        try:
            await stream.open()
        except EngineUnavailable as exc:
            hops = request.get("hops", 0)
            if exc.code == "engine_busy" and hops < MAX_HOPS:
                try:
                    return await layer_send(self.layer, conf.worker_channel(), {**request, "hops": hops + 1})
                except Exception as failed:  # Redis just restarted: a refusal tells the host to ask again now, not after its wait
                    log.warning("caption worker could not pass stream %s on: %r", stream_id, failed)
            return self.reply(reply, stream_id, "refused", code=exc.code, message=str(exc))
        self.streams[stream_id] = Served(stream, reply)
        log.info("caption stream %s opened", stream_id)
        self.reply(reply, stream_id, "opened", worker_channel=self.channel)

    def reply(self, channel: str, stream_id: str, kind: str, **fields) -> None:
        event: WorkerEvent = {"type": "engine.event", "stream_id": stream_id, "kind": kind, **fields}
        self.outbox.put_nowait((channel, event))

    async def send_replies(self) -> None:
        """Whatever waits in the outbox goes as one batch per server process (each reads its streams'
        replies from one channel), in the order it was made."""
        while True:
            channel, event = await self.outbox.get()
            batches = {channel: [event]}
            while not self.outbox.empty():
                channel, event = self.outbox.get_nowait()
                batches.setdefault(channel, []).append(event)
            for channel, events in batches.items():
                batch: WorkerEvents = {"type": "engine.batch", "items": events}
                try:
                    await layer_send(self.layer, channel, batch)
                except Exception as exc:  # the host's channel is full or gone: its health check will notice
                    log.warning("caption worker reply to %s not sent: %s", channel, exc)

    async def watch_loop(self) -> None:
        """How late this loop wakes a 50 ms timer."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(0.05)
            self.loop_late.add((time.monotonic() - asked - 0.05) * 1000)

    async def report(self) -> None:
        """Health of every stream to its host twice a second; drop streams whose host went away; every
        ACCOUNT_EVERY_S while audio comes, a line in the log saying where a frame's time went."""
        accounted = time.monotonic()
        while True:
            await asyncio.sleep(HEALTH_EVERY_S)
            now = time.monotonic()
            # Also once the last stream has gone, for the figures of its last seconds.
            if self.inbound.values and (now - accounted >= ACCOUNT_EVERY_S or not self.streams):
                accounted = now
                log.info("caption worker: %d streams; audio from the servers %s; loop late %s", len(self.streams),
                         self.inbound.summary(), self.loop_late.summary())
            readings: dict = {}
            for stream_id, served in list(self.streams.items()):
                if now - served.last_heard > ORPHAN_AFTER_S:
                    self.drop(stream_id, f"nothing heard from its host for {ORPHAN_AFTER_S} s")
                    continue
                self.reply(served.reply_channel, stream_id, "health", health=served.stream.health(readings))

