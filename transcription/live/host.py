"""The owner's socket: audio in (binary PCM16 frames), start/pause/resume/stop, captions out to the group."""
import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer

from meetings.access import OWNER
from meetings.models import Meeting

from . import conf, session
from .consumers import LiveSocket, db, redis_key
from .engine_bridge import CLOSE_TIMEOUT_S, EngineStream, EngineUnavailable, RemoteStream
from .events import CLOSE_HOST_ELSEWHERE, MAX_FRAME_BYTES, CaptionEvent, EngineHealth, StatusEvent, error, group_name
from .recorder import WavAppender

log = logging.getLogger(__name__)
LOCK_TTL_S = 10
TAKEOVER_WAIT_S = 3
DISCONNECT_FLUSH_S = 5
NO_ENGINE: EngineHealth = {"ready": False, "last_step_age_ms": None, "lag_ms": 0, "stalled": False}


def valid_delay(value) -> bool:
    return isinstance(value, int) and 80 <= value <= 2400 and value % 80 == 0


class HostConsumer(LiveSocket):
    needed = OWNER
    started = paused = False
    stream = recorder = ticker = publisher = disk = starting = stopping = None

    async def joined(self):
        self.engine_message = ""
        self.events: asyncio.Queue = asyncio.Queue()
        self.disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-recording")
        await self.take_host_lock()
        await self.send_json(await self.current_status())

    async def take_host_lock(self):
        """One host socket per meeting. A newer one (a reconnect, another tab) takes over from the older."""
        key = redis_key("host", self.meeting_id)
        # The old socket closes its recording within milliseconds of being told; a dead one never answers.
        deadline = time.monotonic() + TAKEOVER_WAIT_S
        told = None
        while not await self.redis.set(key, self.channel_name, nx=True, ex=LOCK_TTL_S):
            holder = await self.redis.get(key)
            if holder and time.monotonic() < deadline:
                if holder != told:
                    told = holder
                    await self.channel_layer.send(holder.decode(), {"type": "host.takeover"})
                await asyncio.sleep(0.2)
            else:  # the old holder died without letting go (its lock would expire by itself)
                await self.redis.set(key, self.channel_name, ex=LOCK_TTL_S)
                break

    async def host_takeover(self, event):
        if not self.closed:
            await self.send_json(error("host_elsewhere", "Live captions for this meeting are now streamed from another window or device."))
            self.closed = True
            await self.close(code=CLOSE_HOST_ELSEWHERE)
            await self.finish(ended=False)

    # Messages from the page.
    async def receive_message(self, kind, message):
        if not await self.recheck():
            return
        if kind == "start":
            if self.starting is None:
                self.starting = asyncio.create_task(self.begin(message.get("delay_ms")))
            return
        if kind in ("pause", "resume") and self.started:
            self.paused = kind == "pause"
            await db(session.host_set_status)(meeting_id=self.meeting_id, status=Meeting.Status.PAUSED if self.paused else Meeting.Status.LIVE)
            return await self.publish_status()
        if kind == "stop" and self.starting and not self.stopping:
            self.stopping = asyncio.create_task(self.stop())
            return
        await super().receive_message(kind, message)

    async def receive_audio(self, pcm: bytes):
        if not self.started:
            return await self.send_json(error("not_started", "Audio arrived before the session started; it was ignored."))
        if not pcm or len(pcm) > MAX_FRAME_BYTES or len(pcm) % 2:
            return await self.send_json(error("bad_frame", f"An audio frame of {len(pcm)} bytes was ignored: frames must be 16-bit samples, at most one second long."))
        if self.paused or not await self.recheck():
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.disk, self.recorder.append, pcm)
        if self.stream is not None:
            await self.stream.feed(pcm)

    # Starting and stopping.
    async def begin(self, delay_ms):
        """Start in a task of its own: loading the engine can take a while, and pings must still be answered."""
        try:
            await self.start(delay_ms)
        except Exception:
            log.exception("live session for meeting %s could not start", self.meeting_id)
            await self.send_json(error("start_failed", "Live captions could not start. Please try again."))
        finally:
            if not self.started:
                self.starting = None  # a refused or failed start may be tried again

    async def start(self, delay_ms):
        if delay_ms is not None and not valid_delay(delay_ms):
            return await self.send_json(error("bad_delay", "The caption delay must be 80 to 2400 ms in steps of 80 ms."))
        info = await db(session.host_start)(meeting_id=self.meeting_id, user=self.user, delay_ms=delay_ms, scope=self.scope)
        self.offset_ms, self.final_seq, self.recording_id = info.offset_ms, info.final_seq, info.recording_id
        self.recorder = await asyncio.get_running_loop().run_in_executor(self.disk, WavAppender, info.recording_path)
        self.started = True
        self.publisher = asyncio.create_task(self.publish_events())
        await self.open_engine(info.delay_ms)
        await self.send_json({"type": "started", "delay_ms": info.delay_ms, "offset_ms": self.offset_ms, "seq": self.final_seq,
                              "captions": self.stream is not None, "message": self.engine_message})
        self.ticker = asyncio.create_task(self.tick())
        await self.publish_status()

    async def open_engine(self, delay_ms: int):
        if conf.engine_mode() == "worker":
            # Caption workers share one queue of streams: the core layer, where one message has one reader.
            stream = RemoteStream(delay_ms=delay_ms, on_event=self.on_engine_event, layer=get_channel_layer())
        else:
            stream = EngineStream(delay_ms=delay_ms, on_event=self.on_engine_event)
        try:
            await stream.open()
        except EngineUnavailable as exc:
            self.engine_message = str(exc)
            await self.send_json(error(exc.code, str(exc)))
        else:
            self.stream = stream

    def on_engine_event(self, kind: str, data: dict) -> None:
        self.events.put_nowait((kind, data))

    async def publish_events(self):
        """Store finals and send captions strictly in the order the engine made them."""
        while True:
            kind, data = await self.events.get()
            try:
                if kind == "drained":
                    data["done"].set()
                elif kind == "failed":
                    self.stream, self.engine_message = None, f"Live captions stopped: {data.get('message', 'the speech engine failed')}. Your audio is still recorded."
                    await self.send_json(error("engine_failed", self.engine_message))
                elif kind in ("delta", "final"):
                    await self.publish_caption(kind == "final", data)
            except Exception:  # one bad caption must not end the meeting's captions
                log.exception("live caption for meeting %s could not be published", self.meeting_id)

    async def publish_caption(self, final: bool, data: dict):
        text = (data.get("text") or "").strip()
        start_ms = self.offset_ms + int(data.get("start_ms", 0))
        end_ms = self.offset_ms + int(data.get("end_ms", start_ms - self.offset_ms))
        if final:
            if not text:
                return
            words = [[t, self.offset_ms + s, self.offset_ms + e] for t, s, e in data.get("words") or ()]
            await db(session.host_final)(meeting_id=self.meeting_id, text=text, start_ms=start_ms, end_ms=end_ms, words=words)
            self.final_seq += 1
        event: CaptionEvent = {"type": "caption", "final": final, "seq": self.final_seq, "text": text,
                               "start_ms": start_ms, "end_ms": end_ms, "sent_at": time.time()}
        await self.channel_layer.group_send(group_name(self.meeting_id), event)

    async def drain_events(self):
        done = asyncio.Event()
        self.events.put_nowait(("drained", {"done": done}))
        await asyncio.wait_for(done.wait(), 30)

    async def stop(self):
        """End the meeting. A task of its own: the engine's last words may take a while, and the page's
        pings must be answered meanwhile, or it would take the socket for dead."""
        await self.starting
        if not self.started:
            return
        await self.send_json({"type": "stopping"})
        await self.finish(ended=True)
        await self.send_json({"type": "ended"})
        self.closed = True
        await self.close(code=1000)

    async def finish(self, *, ended: bool, flush_s: float = CLOSE_TIMEOUT_S):
        """Flush the engine, close the recording, tell followers. Runs once, on stop or on disconnect."""
        if not self.started:
            return
        self.started = False
        if self.ticker:
            self.ticker.cancel()
        if self.stream is not None:
            began = time.monotonic()
            try:
                await self.stream.close(timeout=flush_s)
                log.info("live captions of meeting %s flushed in %.1f s", self.meeting_id, time.monotonic() - began)
            except Exception:
                log.exception("engine stream for meeting %s did not close cleanly", self.meeting_id)
        if self.publisher:
            await self.drain_events()
            self.publisher.cancel()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.disk, self.recorder.close)
        await db(session.recording_saved)(recording_id=self.recording_id, data_bytes=self.recorder.data_bytes, final=ended)
        if ended:
            await db(session.host_end)(meeting_id=self.meeting_id)
        await self.publish_status("ended" if ended else "offline")

    async def release_host_lock(self):
        key = redis_key("host", self.meeting_id)
        if (await self.redis.get(key) or b"").decode() == self.channel_name:
            await self.redis.delete(key)

    # Heartbeat.
    async def tick(self):
        while True:
            await asyncio.sleep(conf.status_seconds())
            try:
                await self.redis.set(redis_key("host", self.meeting_id), self.channel_name, ex=LOCK_TTL_S)
                await self.publish_status()
                await self.idle_check()
                await self.recheck()
            except Exception:
                log.exception("live status for meeting %s failed", self.meeting_id)

    def engine_health(self) -> EngineHealth:
        if self.stream is None:
            return {**NO_ENGINE, "message": self.engine_message} if self.engine_message else NO_ENGINE
        return self.stream.health()

    async def publish_status(self, host: str | None = None):
        host = host or ("paused" if self.paused else "live")
        event: StatusEvent = {"type": "status", "host": host, "seq": self.final_seq, "engine": self.engine_health(), "sent_at": time.time()}
        await self.redis.set(redis_key("status", self.meeting_id), json.dumps(event), ex=LOCK_TTL_S)
        await self.channel_layer.group_send(group_name(self.meeting_id), event)

    async def disconnect(self, code):
        try:
            if self.stopping:  # the host asked to end the meeting: it ends, whatever happens to the socket
                await asyncio.shield(self.stopping)
            elif self.starting and not self.starting.done():
                self.starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.starting
            # The server gives a closing socket a few seconds: the last words are kept only if quick.
            await self.finish(ended=False, flush_s=DISCONNECT_FLUSH_S)
            await self.release_host_lock()
        finally:
            if self.disk:
                self.disk.shutdown(wait=False)
            await super().disconnect(code)
