"""WebSockets for live captions: the owner streams audio in, everyone permitted follows the captions.

Consumers authenticate, frame and hand off. Audio goes to a one-thread lane (the recording file) and
to the engine stream; captions come back as events, are stored in order, then sent to the meeting's
group on the channel layer, so followers on any server process receive them.
"""
import json
import logging
import time

import redis.asyncio as aioredis
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name
from django.conf import settings

from meetings.access import OWNER, VIEW
from meetings.models import AuditEvent, Meeting

from . import conf, session
from .signout import SessionBoundSocket
from .events import CLOSE_FORBIDDEN, CLOSE_IDLE, CLOSE_SIGNED_OUT, MAX_TEXT_BYTES, CaptionEvent, StatusEvent, error, group_name

log = logging.getLogger(__name__)
db = database_sync_to_async

REFUSALS = {
    "signed_out": (CLOSE_SIGNED_OUT, "You are signed out (or your session ended). Sign in again to use live captions."),
    "forbidden": (CLOSE_FORBIDDEN, "This meeting does not exist or is no longer shared with you."),
    "not_owner": (CLOSE_FORBIDDEN, "Only the meeting's owner can stream audio. Use “Follow live captions” instead."),
}


def redis_key(*parts) -> str:
    prefix = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "scribe")
    return ":".join([prefix, "live", *map(str, parts)])


def _redis():
    return aioredis.from_url(settings.REDIS_URL)


class LiveSocket(SessionBoundSocket, AsyncWebsocketConsumer):
    needed = VIEW
    channel_layer_alias = settings.LIVE_CHANNEL_LAYER  # the pub/sub layer: see CHANNEL_LAYERS

    async def dispatch(self, message):
        """Channels' own dispatch hops to a thread to close stale database connections before every
        message: for 200 followers at 12 captions a second that thread was most of the server's time.
        These handlers touch the database only through `db()`, which closes stale connections itself."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self):
        self.meeting_id = int(self.scope["url_route"]["kwargs"]["meeting_id"])
        self.user = self.scope.get("user")
        self.last_heard = time.monotonic()
        self.last_check = time.monotonic()
        self.closed = False
        self.redis = _redis()
        # Accept first so that a refusal reaches the page in words, not as a bare failed handshake.
        await self.accept()
        if self.user is None or not self.user.is_authenticated:
            return await self.refuse("signed_out")
        problem = await db(session.check_access)(self.scope["session"], self.user.pk, self.meeting_id, self.needed)
        if problem:
            if problem == "forbidden" and self.needed == OWNER:
                problem = await db(self._owner_or_forbidden)()
            await db(session.audit_socket)(self.scope, AuditEvent.Action.ACCESS_DENIED, user=self.user, meeting_id=self.meeting_id, detail={"socket": type(self).__name__})
            return await self.refuse(problem)
        await self.channel_layer.group_add(group_name(self.meeting_id), self.channel_name)
        await self.watch_session()
        await self.joined()

    def _owner_or_forbidden(self) -> str:
        # A viewer opening the host socket is told why, without revealing meetings they cannot see.
        from meetings.access import VIEW as view, get_meeting_for_user, MeetingAccessDenied

        try:
            get_meeting_for_user(self.user, self.meeting_id, view)
            return "not_owner"
        except MeetingAccessDenied:
            return "forbidden"

    async def joined(self):
        pass

    async def current_status(self) -> StatusEvent:
        status = await db(session.meeting_status)(self.meeting_id)
        live = status in (Meeting.Status.LIVE, Meeting.Status.PAUSED)
        raw = await self.redis.get(redis_key("status", self.meeting_id)) if live else None
        status_event = json.loads(raw) if raw else None
        # A beat older than two beats was left by a server that died: it must not say "live" any more.
        if status_event and (status_event["host"] == "reconnecting" or time.time() - status_event["sent_at"] < 2 * conf.status_seconds() + 1):
            return status_event
        # Live in the database but no host beat: its page or its server went away and may come back.
        host = "reconnecting" if live else "offline" if status == Meeting.Status.SCHEDULED else "ended"
        seq = await db(session.final_count)(self.meeting_id)
        return {"type": "status", "host": host, "seq": seq, "sent_at": time.time(), "audio_at": None,
                "engine": {"ready": False, "last_step_age_ms": None, "lag_ms": 0, "stalled": False}}

    async def refuse(self, reason: str):
        code, message = REFUSALS[reason]
        if not self.closed:
            self.closed = True
            await self.send_json(error(reason, message))
            await self.close(code=code)

    async def recheck(self, *, force: bool = False) -> bool:
        """Is the session still signed in and the meeting still shared? Checked at most every few seconds."""
        if self.closed:
            return False
        if not force and time.monotonic() - self.last_check < conf.recheck_seconds():
            return True
        self.last_check = time.monotonic()
        problem = await db(session.check_access)(self.scope["session"], self.user.pk, self.meeting_id, self.needed)
        if problem:
            await self.refuse(problem)
            return False
        return True

    async def idle_check(self) -> None:
        if not self.closed and time.monotonic() - self.last_heard > conf.idle_close_seconds():
            self.closed = True
            await self.send_json(error("idle", "Nothing was heard from this page for too long; reconnecting."))
            await self.close(code=CLOSE_IDLE)

    async def send_json(self, payload: dict) -> None:
        await self.send(text_data=json.dumps(payload))

    async def receive(self, text_data=None, bytes_data=None):
        self.last_heard = time.monotonic()
        if self.closed:
            return
        if bytes_data is not None:
            return await self.receive_audio(bytes_data)
        if len(text_data) > MAX_TEXT_BYTES:
            return await self.send_json(error("too_large", "That message was too large and was ignored."))
        try:
            message = json.loads(text_data)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            return await self.send_json(error("malformed", "That message could not be read and was ignored."))
        if kind == "ping":
            if await self.recheck():
                await self.send_json({"type": "pong", "t": message.get("t"), "server_time": time.time()})
            return
        await self.receive_message(kind, message)

    async def receive_audio(self, pcm: bytes):
        await self.send_json(error("not_host", "Only the meeting's owner can send audio; this audio was ignored."))

    async def receive_message(self, kind: str, message: dict):
        if kind == "hello":
            return await self.replay(message)
        await self.send_json(error("unknown", f"Unknown message type {str(kind)[:40]!r}; it was ignored."))

    async def replay(self, message: dict):
        """`{"type": "hello", "last_seq": n}`: the finals after n, for a page that (re)connected or saw a gap."""
        after = message.get("last_seq", 0)
        if not isinstance(after, int) or after < 0:
            return await self.send_json(error("malformed", "last_seq must be a whole number; it was ignored."))
        if not await self.recheck(force=True):
            return
        # The group was joined before this read, so nothing falls between replay and live; the page drops repeats by seq.
        finals = await db(session.replay_finals)(meeting_id=self.meeting_id, after_seq=after)
        await self.send_json({"type": "replay", "captions": finals, "more": len(finals) >= session.REPLAY_LIMIT})

    async def caption(self, event: CaptionEvent):
        if not self.closed:  # nothing after a sign-out or refusal, even what was already queued
            await self.send_json(event)

    async def status(self, event: StatusEvent):
        # Status arrives every few seconds from the host: a good moment to look at our own socket too.
        await self.idle_check()
        if await self.recheck():
            await self.send_json(event)

    async def disconnect(self, code):
        self.closed = True
        await self.unwatch_session()
        await self.channel_layer.group_discard(group_name(self.meeting_id), self.channel_name)
        await self.redis.aclose()


class FollowConsumer(LiveSocket):
    """Anyone the meeting is shared with: captions and host status out; pings and `hello` in."""

    async def joined(self):
        await db(session.audit_socket)(self.scope, AuditEvent.Action.LIVE_FOLLOW, user=self.user, meeting_id=self.meeting_id)
        await self.send_json(await self.current_status())
