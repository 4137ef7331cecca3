"""Live sockets end with the session that opened them.

Channels sockets outlive a sign-out: the session is checked when the socket opens, and a follower that
sends nothing never gives the server a reason to look again. Two things close them:

- signing out (and deactivating an account) sends `session.ended` to a per-user group on the live
  channel layer, which every live socket of that user joins; the socket refuses and closes at once,
  and drops anything still queued for it (captions included);
- a timer on each socket re-checks the session and the meeting's sharing every
  `conf.recheck_seconds()`, even when nothing arrives, for sessions that expire or are removed.

Consumers mix in `SessionBoundSocket`, call `watch_session()` once they have joined and
`unwatch_session()` on disconnect; they provide `user`, `closed`, `recheck(force=...)` and `refuse(reason)`.
"""
import asyncio
import contextlib
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from . import conf

log = logging.getLogger(__name__)


def user_group(user_id: int) -> str:
    return f"live.user.{user_id}"


def close_user_sockets(user_id: int) -> None:
    """Close every live socket of the user, on every server process (synchronous: signal receivers)."""
    try:
        layer = get_channel_layer(settings.LIVE_CHANNEL_LAYER)
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "session.ended"})
    except Exception:  # Redis down: sign-out must still work; the sockets' timers close them instead
        log.exception("could not tell the live sockets of user %s that the session ended", user_id)


class SessionBoundSocket:
    """Mixin for live consumers: close on sign-out within a second, and re-check on a timer."""

    _session_timer: asyncio.Task | None = None

    async def watch_session(self) -> None:
        await self.channel_layer.group_add(user_group(self.user.pk), self.channel_name)
        self._session_timer = asyncio.create_task(self._recheck_periodically())

    async def unwatch_session(self) -> None:
        if self._session_timer is not None:
            self._session_timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._session_timer
            await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
            self._session_timer = None

    async def session_ended(self, event) -> None:
        await self.refuse("signed_out")

    async def _recheck_periodically(self) -> None:
        while not self.closed:
            await asyncio.sleep(max(conf.recheck_seconds(), 1))
            try:
                await self.recheck(force=True)
            except Exception:  # the database away for a moment: try again at the next tick
                log.exception("live socket re-check failed")


def on_logged_out(sender, request=None, user=None, **kwargs) -> None:
    if user is not None:
        close_user_sockets(user.pk)


def on_user_saved(sender, instance, created=False, **kwargs) -> None:
    if not created and not instance.is_active:  # deactivated by an administrator
        close_user_sockets(instance.pk)


def connect_signals() -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.signals import user_logged_out
    from django.db.models.signals import post_save

    user_logged_out.connect(on_logged_out, dispatch_uid="live-sockets-signout")
    post_save.connect(on_user_saved, sender=get_user_model(), dispatch_uid="live-sockets-deactivated")
