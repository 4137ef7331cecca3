"""Ending live meetings that lost their host (run by Celery beat)."""
import time

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from . import session
from .consumers import redis_key
from .events import StatusEvent, group_name

NO_HOST_FOR_S = 300  # a host reconnecting after a network drop or a laptop lid comes back well within this


def end_abandoned_meetings(idle_s: int = NO_HOST_FOR_S) -> list[int]:
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
