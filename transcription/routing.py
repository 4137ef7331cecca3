"""WebSocket routes of the transcription app (added to config.websocket)."""
from django.urls import path

from .live.consumers import FollowConsumer
from .live.host import HostConsumer

websocket_urlpatterns = [
    path("ws/meetings/<int:meeting_id>/live/host", HostConsumer.as_asgi()),
    path("ws/meetings/<int:meeting_id>/live/captions", FollowConsumer.as_asgi()),
]
