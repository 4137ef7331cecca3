import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

# Django must be set up before anything that imports models (the consumers) is loaded.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from .websocket import websocket_application  # noqa: E402

from transcription import engine_host  # noqa: E402
from transcription.live import conf as live_conf  # noqa: E402

if live_conf.engine_mode() == "local":
    engine_host.preload_in_background()  # live captions from the first second of the first meeting

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application})
