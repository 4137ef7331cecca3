import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

# Django must be set up before anything that imports models (the consumers) is loaded.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from . import daphne_guard  # noqa: E402
from .request_limits import RequestLimits  # noqa: E402
from .websocket import websocket_application  # noqa: E402

from transcription import engine_host  # noqa: E402
from transcription.live import conf as live_conf  # noqa: E402

if live_conf.engine_mode() == "local":
    engine_host.preload_in_background()  # live captions from the first second of the first meeting

# Bodies are bounded per route before Django reads them: in Daphne itself (which buffers a whole body
# before calling any application) and in front of Django (for servers that stream bodies).
daphne_guard.install()
application = ProtocolTypeRouter({"http": RequestLimits(django_asgi_app), "websocket": websocket_application})
