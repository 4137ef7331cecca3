"""Ending live meetings that lost their host (run by Celery beat)."""
import time

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from . import conf, session
from .consumers import redis_key
from .events import StatusEvent, group_name

def end_abandoned_meetings(idle_s: int | None = None) -> list[int]:
    """Meetings whose host has been gone (no host socket, no audio) longer than the grace, e.g. after the
    server that would have ended them was restarted."""
    idle_s = conf.host_grace_seconds() if idle_s is None else idle_s
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        ended = session.end_abandoned_sessions(host_present=lambda pk: bool(client.exists(redis_key("host", pk))), idle_s=idle_s)
    finally:
        client.close()
    layer = get_channel_layer(settings.LIVE_CHANNEL_LAYER)
    for meeting_id in ended:  # followers still watching see the meeting end instead of "host offline" for ever
        event: StatusEvent = {"type": "status", "host": "ended", "seq": session.final_count(meeting_id),
                              "engine": {"ready": False, "last_step_age_ms": None, "lag_ms": 0, "stalled": False}, "sent_at": time.time()}
        async_to_sync(layer.group_send)(group_name(meeting_id), event)
    return ended
