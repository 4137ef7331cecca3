"""Live caption settings, read once. Each can be set in Django settings or the environment."""
from django.conf import settings

from config.env import envint, envstr


def _setting(name: str, env_reader, env_name: str, default, **kw):
    value = getattr(settings, name, None)
    return value if value is not None else env_reader(env_name, default, **kw)


def engine_mode() -> str:
    """`worker` (the default): the engine runs in `manage.py run_caption_worker` processes, so that a restart
    of a web server never reloads the model and meetings survive it; `local`: in the server process, which
    reloads the model whenever it restarts (the test suite's layout: one process, no worker to start)."""
    return _setting("ASR_LIVE_ENGINE", envstr, "SCRIBE_ASR_LIVE_ENGINE", "worker")


def worker_channel() -> str:
    return _setting("ASR_WORKER_CHANNEL", envstr, "SCRIBE_ASR_WORKER_CHANNEL", "caption-workers")


def recheck_seconds() -> int:
    """How often a socket re-checks its session and sharing (also before handling frames)."""
    return _setting("LIVE_RECHECK_SECONDS", envint, "SCRIBE_LIVE_RECHECK_SECONDS", 5, minimum=0)


def status_seconds() -> int:
    return _setting("LIVE_STATUS_SECONDS", envint, "SCRIBE_LIVE_STATUS_SECONDS", 2, minimum=1)


def idle_close_seconds() -> int:
    """A page that has sent nothing (not even a ping) for this long is treated as gone."""
    return _setting("LIVE_IDLE_CLOSE_SECONDS", envint, "SCRIBE_LIVE_IDLE_CLOSE_SECONDS", 30, minimum=5)


def worker_open_seconds() -> int:
    """How long the host waits for a caption worker to take a new stream."""
    return _setting("LIVE_WORKER_OPEN_SECONDS", envint, "SCRIBE_LIVE_WORKER_OPEN_SECONDS", 20, minimum=1)


def host_grace_seconds() -> int:
    """How long a meeting stays live after its host's page went away (a reload, a crash, a long network
    drop) before the session ends by itself. A host back within it continues the same session."""
    return _setting("LIVE_HOST_GRACE_SECONDS", envint, "SCRIBE_LIVE_HOST_GRACE_SECONDS", 120, minimum=5)
