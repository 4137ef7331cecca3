"""Short-lived status that several processes share through Redis.

Engines live in caption workers, Celery GPU workers or the web server; the status page and /healthz
run in the web server. Each engine host writes its health here every few seconds with an expiry, so
a process that dies simply disappears. Keys sit under the site's channel prefix, which keeps two
sites (or two test runs) on one Redis apart.
"""
import json

import redis
from django.conf import settings

ENGINE_TTL_S = 15  # a host that has not reported for this long is gone
FAILURES_KEPT = 50


def redis_client(timeout: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)


def key(*parts: str) -> str:
    return ":".join([settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"], "status", *parts])


def publish_engine(host_id: str, health: dict, client: redis.Redis | None = None) -> None:
    (client or redis_client()).set(key("engine", host_id), json.dumps(health), ex=ENGINE_TTL_S)


def engine_hosts(client: redis.Redis | None = None) -> list[dict]:
    """The latest health report of every live engine host, ordered by host id."""
    client = client or redis_client()
    names = sorted(client.scan_iter(match=key("engine", "*"), count=100))
    values = client.mget(names) if names else []
    return [json.loads(v) for v in values if v]


def record_task_failure(entry: dict, client: redis.Redis | None = None) -> None:
    client = client or redis_client()
    with client.pipeline() as pipe:
        pipe.lpush(key("task-failures"), json.dumps(entry))
        pipe.ltrim(key("task-failures"), 0, FAILURES_KEPT - 1)
        pipe.execute()


def task_failures(limit: int = 20, client: redis.Redis | None = None) -> list[dict]:
    return [json.loads(v) for v in (client or redis_client()).lrange(key("task-failures"), 0, limit - 1)]
