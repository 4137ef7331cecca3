"""The WebSocket entry point: every socket needs an allowed Origin and a logged-in session."""
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

from transcription.routing import websocket_urlpatterns as live_routes

websocket_urlpatterns: list = [*live_routes]

websocket_application = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
