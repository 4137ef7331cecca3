"""The owner's socket: audio in (binary PCM16 frames), start/pause/resume/stop, captions out to the group.

The server's view of a host: live (a host socket streams), reconnecting (its page went away, for at
most the grace period: followers are told, the meeting stays live) and ended (Stop, or the grace ran
out). Audio frames are numbered within a page's capture: the page sends `start` with its capture id,
learns from `started` (and `ack` every beat) which frames are safely in the recording, and resends the
rest after a drop; `frames` says which seq the next binary frame has, so a frame appended once is
skipped, here and in the engine. Captions made from resent audio are marked late.
"""
import asyncio
import contextlib
from collections import deque
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from meetings.access import OWNER
from meetings.models import Meeting

from . import conf, session
from .consumers import LiveSocket, _redis, db, redis_key
from .engine_bridge import CLOSE_TIMEOUT_S, EngineStream, EngineUnavailable, RemoteStream, tell_worker
from .events import CLOSE_HOST_ELSEWHERE, MAX_FRAME_BYTES, CaptionEvent, EngineHealth, StatusEvent, error, group_name
from .recorder import WavAppender

log = logging.getLogger(__name__)
LOCK_TTL_S = 10
TAKEOVER_WAIT_S = 3
# The lock holder marks itself alive every half second: a mark this old means it died (a loop stalled for
# 1.5 s would be taken for dead, and is still told to let go). A restarted server is back in about a second.
ALIVE_MS = 2000
DISCONNECT_FLUSH_S = 5
REPLAY_FRAMES = 125  # 10 s of 80 ms frames: more than a dead caption worker goes unnoticed
REOPEN_RETRY_S = 0.5  # as often as the caption workers and the link try a failing channel layer
AUDIO_QUIET_S = 1.0  # the page sends a frame every 80 ms: this long without one, the host's audio has stopped
CAPTURE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_grace_timers: set[asyncio.Task] = set()  # kept referenced: a task nobody holds may be collected mid-sleep
NO_ENGINE: EngineHealth = {"ready": False, "last_step_age_ms": None, "lag_ms": 0, "stalled": False}


def valid_delay(value) -> bool:
    return isinstance(value, int) and 80 <= value <= 2400 and value % 80 == 0


class HostConsumer(LiveSocket):
    needed = OWNER
    started = paused = ending_page = False
    replaying: list[bytes] | None = None
    stream = recorder = ticker = publisher = disk = starting = stopping = alive_marker = None

    async def joined(self):
        self.engine_message = ""
        self.events: asyncio.Queue = asyncio.Queue()
        self.disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-recording")
        self.capture, self.next_seq, self.late_until_seq = "", 1, 0
        self.stream_ms = self.late_until_ms = self.final_end_ms = 0  # audio fed to this socket's engine stream, and how much of it was resent
        self.audio_at: float | None = None
        self.audio_flowing = False  # as last told to followers
        self.recent: deque[bytes] = deque(maxlen=REPLAY_FRAMES)  # the engine's last seconds, for a reopened stream
        self.reopening: asyncio.Task | None = None
        # The lock is taken at Start, not here: opening the host page in another tab must not end a live stream.
        await self.send_json(await self.current_status())

    async def take_host_lock(self):
        """One host socket per meeting. A newer one (a reconnect, another tab) takes over from the older."""
        key = redis_key("host", self.meeting_id)
        # The old socket closes its recording within milliseconds of being told; a dead one never answers.
        deadline = time.monotonic() + TAKEOVER_WAIT_S
        told = None
        while not await self.redis.set(key, self.channel_name, nx=True, ex=LOCK_TTL_S):
            holder = await self.redis.get(key)
            # A killed server's socket never lets go: waiting for it would only delay the page coming back.
            alive = (holder is not None and await self.redis.get(redis_key("host-alive", self.meeting_id)) == holder
                     and await self.listened_to(holder))
            if holder and holder != told:
                told = holder
                await self.channel_layer.send(holder.decode(), {"type": "host.takeover"})
            if alive and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            else:  # the old holder died without letting go (its lock would expire by itself)
                await self.redis.set(key, self.channel_name, ex=LOCK_TTL_S)
                break
        self.alive_marker = asyncio.create_task(self.mark_alive())

    async def listened_to(self, channel: bytes) -> bool:
        """Whether a server still reads `channel`. On the pub/sub layer a socket's channel is a subscription
        of its server's Redis connection, which the kernel closes the moment that server dies: a holder
        whose channel has no subscriber is gone, even while its alive mark has a second or two to run."""
        if not isinstance(self.channel_layer, RedisPubSubChannelLayer):
            return True
        try:
            [(_, subscribers)] = await self.redis.pubsub_numsub(channel)
        except Exception:  # cannot tell: the alive mark decides
            return True
        return subscribers > 0

    async def mark_alive(self):
        """While this socket holds the lock: from taking it (an engine may take seconds to open) to letting go."""
        while True:
            with contextlib.suppress(Exception):  # Redis restarting: the next mark goes through
                await self.redis.set(redis_key("host-alive", self.meeting_id), self.channel_name, px=ALIVE_MS)
            await asyncio.sleep(0.5)

    async def host_takeover(self, event):
        if not self.closed:
            await self.send_json(error("host_elsewhere", "Live captions for this meeting are now streamed from another window or device."))
            self.closed = True
            await self.close(code=CLOSE_HOST_ELSEWHERE)
            await self.finish(ended=False, flush_s=DISCONNECT_FLUSH_S, handover=True)

    # Messages from the page.
    async def receive_message(self, kind, message):
        if not await self.recheck():
            return
        if kind == "start":
            if self.starting is None:
                capture = message.get("capture") or ""
                self.capture = capture if isinstance(capture, str) and CAPTURE_ID.fullmatch(capture) else ""
                self.ending_page = message.get("ending") is True
                self.starting = asyncio.create_task(self.begin(message.get("delay_ms")))
            return
        if kind == "frames" and self.started:
            return await self.frames_from(message)
        if kind in ("pause", "resume") and self.started:
            self.paused = kind == "pause"
            await db(session.host_set_status)(meeting_id=self.meeting_id, status=Meeting.Status.PAUSED if self.paused else Meeting.Status.LIVE)
            return await self.publish_status()
        if kind == "stop" and self.starting and not self.stopping:
            self.stopping = asyncio.create_task(self.stop())
            return
        await super().receive_message(kind, message)

    async def receive_audio(self, pcm: bytes):
        received_at = time.time()
        if not self.started:
            return await self.send_json(error("not_started", "Audio arrived before the session started; it was ignored."))
        if not pcm or len(pcm) > MAX_FRAME_BYTES or len(pcm) % 2:
            return await self.send_json(error("bad_frame", f"An audio frame of {len(pcm)} bytes was ignored: frames must be 16-bit samples, at most one second long."))
        if not await self.recheck():
            return
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        # Paused pages capture nothing; frames arriving while paused were captured before the pause.
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(self.disk, self.recorder.append, pcm, self.capture, seq):
            return  # resent after a drop, and already in the recording and the engine
        self.audio_at = time.time()
        if not self.audio_flowing:  # audio is back: followers hear of it now, not at the next beat
            self.audio_flowing = True
            await self.publish_status()
        self.stream_ms += len(pcm) // 32
        if seq <= self.late_until_seq:
            self.late_until_ms = self.stream_ms
        self.recent.append(pcm)
        if self.replaying is not None:
            self.replaying.append(pcm)
        elif self.stream is not None:
            await self.stream.feed(pcm, received_at)

    async def frames_from(self, message: dict):
        """`{"type": "frames", "seq": n, "late": k}`: the next binary frame is seq n, and k frames from
        there were captured while the page could not send them."""
        seq, late = message.get("seq"), message.get("late", 0)
        if not (isinstance(seq, int) and seq >= 1 and isinstance(late, int) and late >= 0):
            return await self.send_json(error("malformed", "frames needs whole numbers seq ≥ 1 and late ≥ 0; it was ignored."))
        self.next_seq = seq
        self.late_until_seq = seq + late - 1

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
        if self.ending_page and await db(session.meeting_status)(self.meeting_id) not in (Meeting.Status.LIVE, Meeting.Status.PAUSED):
            return await self.send_json({"type": "ended"})  # Stop went through before the connection dropped
        began = time.monotonic()
        await self.take_host_lock()
        locked = time.monotonic()
        await self.redis.delete(redis_key("grace", self.meeting_id))  # back within the grace: the session goes on
        info = await db(session.host_start)(meeting_id=self.meeting_id, user=self.user, delay_ms=delay_ms, scope=self.scope)
        self.recording_id, self.final_seq = info.recording_id, info.final_seq
        self.recorder = await asyncio.get_running_loop().run_in_executor(self.disk, WavAppender, info.recording_path)
        # This stream's caption times start where the recording ends now (the mark may have cut a torn frame).
        self.offset_ms = self.recorder.duration_ms
        acked = self.recorder.acked(self.capture)
        self.next_seq = acked + 1
        self.started = True
        self.publisher = asyncio.create_task(self.publish_events())
        self.delay_ms = info.delay_ms
        opening = time.monotonic()
        await self.open_engine(info.delay_ms)
        # Where a resume's time goes (benchmarks/live_faults.py reads the same from the pages).
        log.info("live session of meeting %s started in %.2f s: host lock %.2f s, recording %.2f s, engine %.2f s", self.meeting_id,
                 time.monotonic() - began, locked - began, opening - locked, time.monotonic() - opening)
        await self.send_json({"type": "started", "delay_ms": info.delay_ms, "offset_ms": self.offset_ms, "seq": self.final_seq,
                              "acked": acked, "captions": self.stream is not None, "message": self.engine_message})
        self.ticker = asyncio.create_task(self.tick())
        await self.publish_status()

    async def open_engine(self, delay_ms: int, *, tell_page: bool = True):
        if conf.engine_mode() == "worker":
            # Caption workers share one queue of streams: the core layer, where one message has one reader.
            stream = RemoteStream(delay_ms=delay_ms, on_event=self.on_engine_event, layer=get_channel_layer())
            await self.release_orphaned_stream(stream.layer)
        else:
            stream = EngineStream(delay_ms=delay_ms, on_event=self.on_engine_event)
        try:
            await stream.open()
        except EngineUnavailable as exc:
            self.engine_message = str(exc)
            if tell_page:
                await self.send_json(error(exc.code, str(exc)))
        else:
            self.stream = stream
            if isinstance(stream, RemoteStream):
                record = {"worker": stream.worker, "stream_id": stream.stream_id}
                await self.redis.set(redis_key("stream", self.meeting_id), json.dumps(record), ex=conf.host_grace_seconds() + 60)

    async def release_orphaned_stream(self, layer):
        """A stream still on record for this meeting was left by a server that died (a socket that closes
        politely forgets its own): free its worker's slot now rather than when the worker notices."""
        raw = await self.redis.get(redis_key("stream", self.meeting_id))
        if raw:
            record = json.loads(raw)
            await tell_worker(layer, record["worker"], record["stream_id"], "caption.release")
            log.info("released caption stream %s of meeting %s, left by a server that stopped", record["stream_id"], self.meeting_id)

    async def forget_stream(self):
        """Before the host lock goes: the next host socket must not take this stream, still flushing, for an orphan."""
        if not isinstance(self.stream, RemoteStream):
            return
        key = redis_key("stream", self.meeting_id)
        with contextlib.suppress(Exception):  # Redis gone: so is the record, and the worker drops the stream by itself
            raw = await self.redis.get(key)
            if raw and json.loads(raw)["stream_id"] == self.stream.stream_id:
                await self.redis.delete(key)

    async def reopen_engine(self):
        """The caption worker stopped answering (killed, or its host died) or missed audio (Redis
        restarted): open the stream again, on another worker where one exists, and give it the last
        seconds of audio that the old one may not have captioned. Their captions are marked late; the
        recording never stopped."""
        await self.forget_stream()  # released here, not taken for one a dead server left
        old, self.stream = self.stream, None
        worker = old.worker
        await old.abandon()
        self.engine_message = "Captions interrupted: the caption worker stopped answering. Reopening on another worker…"
        with contextlib.suppress(Exception):  # Redis restarting: followers hear of it at the next beat
            await self.publish_status()
        tell_page = True
        while self.started and self.stream is None:
            # The old stream may be alive on a worker that was only cut off, and hold the only free slot.
            await tell_worker(old.layer, worker, old.stream_id, "caption.release")
            try:
                await self.open_engine(self.delay_ms, tell_page=tell_page)
            except Exception as exc:  # the channel layer fails while Redis restarts
                log.info("captions of meeting %s not reopened yet: %r", self.meeting_id, exc)
            if self.stream is None:
                tell_page = False  # told once; the status line keeps saying it
                await asyncio.sleep(REOPEN_RETRY_S)
        if self.stream is not None and not self.started:  # the session ended while the stream opened: free its slot
            await self.forget_stream()
            await self.stream.abandon()
            self.stream = None
        if self.stream is None:
            return
        self.engine_message = ""
        # Frames arriving while the replay is sent queue behind it, so the new stream hears audio in order.
        stream, self.stream, self.replaying = self.stream, None, []
        # From the end of the dead stream's last final: its unfinished line is heard again, its finals are not.
        uncaptioned, replay = self.stream_ms - self.final_end_ms, []
        for pcm in reversed(self.recent):
            if uncaptioned <= 0:
                break
            replay.insert(0, pcm)
            uncaptioned -= len(pcm) // 32
        replay_ms = sum(len(p) for p in replay) // 32
        self.offset_ms = self.recorder.duration_ms - replay_ms  # the new stream's time 0 is the replay's start
        self.stream_ms = self.late_until_ms = replay_ms
        self.final_end_ms = 0
        for pcm in replay:
            await stream.feed(pcm)
        while self.replaying:
            await stream.feed(self.replaying.pop(0))
        self.stream, self.replaying = stream, None
        log.info("live captions of meeting %s reopened on another caption worker", self.meeting_id)
        await self.publish_status()

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
            self.final_end_ms = max(self.final_end_ms, end_ms - self.offset_ms)
            words = [[t, self.offset_ms + s, self.offset_ms + e] for t, s, e in data.get("words") or ()]
            self.final_seq = await db(session.host_final)(meeting_id=self.meeting_id, text=text, start_ms=start_ms,
                                                          end_ms=end_ms, words=words)
        event: CaptionEvent = {"type": "caption", "final": final, "seq": self.final_seq, "text": text,
                               "start_ms": start_ms, "end_ms": end_ms, "sent_at": time.time()}
        if data.get("made_at"):
            event["made_at"] = data["made_at"]
        if self.late_until_ms and end_ms - self.offset_ms <= self.late_until_ms:
            event["late"] = True
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

    async def finish(self, *, ended: bool, flush_s: float = CLOSE_TIMEOUT_S, handover: bool = False):
        """Close the recording, flush the engine, tell followers. Runs once, on stop, disconnect or takeover.

        The recording is closed and the host lock let go before the engine's flush: a reconnecting page
        waits for that lock, and must not wait out the last words of the socket it replaces."""
        if not self.started:
            return
        self.started = False
        if self.ticker:
            self.ticker.cancel()
        await asyncio.get_running_loop().run_in_executor(self.disk, self.recorder.close)
        await self.forget_stream()
        if not ended:
            if not handover:  # before the lock goes: a host taking it next deletes this grace
                await self.start_grace()
                await self.publish_status("reconnecting")
            await self.release_host_lock()
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
        await db(session.recording_saved)(recording_id=self.recording_id, data_bytes=self.recorder.data_bytes, final=ended)
        if ended:
            await db(session.host_end)(meeting_id=self.meeting_id)
            await self.publish_status("ended")

    async def start_grace(self):
        """The host's page went away without Stop: the meeting stays live for the grace, then ends unless
        a host socket has started again (which deletes the grace key)."""
        grace = conf.host_grace_seconds()
        await self.redis.set(redis_key("grace", self.meeting_id), self.channel_name, ex=grace + 60)
        task = asyncio.create_task(end_after_grace(self.meeting_id, self.channel_name, grace, self.channel_layer))
        _grace_timers.add(task)
        task.add_done_callback(_grace_timers.discard)

    async def release_host_lock(self):
        if self.alive_marker:
            self.alive_marker.cancel()
        key = redis_key("host", self.meeting_id)
        if (await self.redis.get(key) or b"").decode() == self.channel_name:
            await self.redis.delete(key)

    # Heartbeat.
    async def tick(self):
        """A beat every few seconds, and a status as soon as the host's audio stops arriving."""
        last_beat = woke = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            # A tick far later than asked means this loop was busy: the worker's replies may be waiting
            # unread, so its silence is judged only after an on-time tick.
            on_time, woke = time.monotonic() - woke < 1.0, time.monotonic()
            if on_time and isinstance(self.stream, RemoteStream) and self.stream.gone() and not (self.reopening and not self.reopening.done()):
                self.reopening = asyncio.create_task(self.reopen_engine())
            flowing = self.audio_at is not None and time.time() - self.audio_at < AUDIO_QUIET_S
            if flowing == self.audio_flowing and time.monotonic() - last_beat < conf.status_seconds():
                continue
            self.audio_flowing, last_beat = flowing, time.monotonic()
            if not flowing and isinstance(self.stream, RemoteStream):
                await self.stream.keepalive()  # paused: no audio tells the worker that this stream is still wanted
            try:
                await self.redis.set(redis_key("host", self.meeting_id), self.channel_name, ex=LOCK_TTL_S)
                await self.publish_status()
                await self.send_json({"type": "ack", "seq": self.recorder.last_seq if self.recorder.capture == self.capture else 0})
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
        event: StatusEvent = {"type": "status", "host": host, "seq": self.final_seq, "engine": self.engine_health(),
                              "sent_at": time.time(), "audio": self.audio_flowing and host == "live", "audio_at": self.audio_at}
        ttl = conf.host_grace_seconds() if host == "reconnecting" else LOCK_TTL_S
        await self.redis.set(redis_key("status", self.meeting_id), json.dumps(event), ex=ttl)
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


async def end_after_grace(meeting_id: int, token: str, grace: int, layer) -> None:
    """Runs on in this server process after the host's socket has gone. A restarted process loses the
    timer; the periodic sweep (`sweep.end_abandoned_meetings`) ends such meetings after the same grace."""
    await asyncio.sleep(grace)
    client = _redis()
    try:
        if (await client.get(redis_key("grace", meeting_id)) or b"").decode() != token:
            return  # a host came back (and perhaps went again: then that later grace decides)
        if await client.exists(redis_key("host", meeting_id)):
            return
        await client.delete(redis_key("grace", meeting_id), redis_key("status", meeting_id))
    finally:
        await client.aclose()
    if await db(session.host_end_if_live)(meeting_id=meeting_id):
        log.info("meeting %s ended: its host did not come back within %s s", meeting_id, grace)
        event: StatusEvent = {"type": "status", "host": "ended", "seq": await db(session.final_count)(meeting_id),
                              "engine": NO_ENGINE, "sent_at": time.time(), "audio_at": None}
        await layer.group_send(group_name(meeting_id), event)
