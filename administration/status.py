"""What the status page shows: speech engines, Celery queues and tasks, and the last hour of load.

Engines report from whichever process hosts them (config/status_store.py); queue lengths are read
from the broker's Redis lists; running tasks come from `inspect`, with a short timeout so that a busy
or missing worker cannot hang the page.
"""
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from config.celery import app
from config.status_store import engine_hosts, task_failures

from .models import ModelVersion, StatusSample

INSPECT_TIMEOUT_S = 1.0
QUEUES = ("cpu", "gpu")
# kombu's Redis transport keeps messages of priority p > 0 in a list named queue + SEP + p.
PRIORITY_SEP = "\x06\x16"
PRIORITIES = (3, 6, 9)


def engine_status() -> dict:
    hosts = engine_hosts()
    live = [h for h in hosts if h.get("alive")]
    p50 = [h["step_ms_p50"] for h in live if h.get("step_ms_p50") is not None]
    p95 = [h["step_ms_p95"] for h in live if h.get("step_ms_p95") is not None]
    return {
        "hosts": hosts,
        "active_streams": sum(h.get("active_streams", 0) for h in hosts),
        "capacity": sum(h.get("capacity", 0) for h in live),
        "capacity_memory": sum(h.get("capacity_memory") or h.get("capacity", 0) for h in live),
        "capacity_time": sum(h.get("capacity_time") or h.get("capacity", 0) for h in live),
        # The slowest engine bounds the lag its streams see, so the page shows the worst of them.
        "step_ms_p50": max(p50, default=None),
        "step_ms_p95": max(p95, default=None),
    }


def _broker_client():
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=1, socket_connect_timeout=1)


def queue_lengths() -> dict[str, int]:
    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    client = _broker_client()
    lengths = {}
    for queue in QUEUES:
        names = [prefix + queue] + [f"{prefix}{queue}{PRIORITY_SEP}{p}" for p in PRIORITIES]
        with client.pipeline() as pipe:
            for name in names:
                pipe.llen(name)
            lengths[queue] = sum(pipe.execute())
    return lengths


def _progress(task: dict) -> int | None:
    """Percent done of a running import or verification, read from its model version."""
    if not task.get("name", "").endswith(("import_model_version", "verify_model_version")) or not task.get("args"):
        return None
    version = ModelVersion.objects.filter(pk=task["args"][0]).first()
    return version.progress_percent if version else None


def running_tasks() -> tuple[list[dict], bool]:
    """Tasks workers are running now, and whether any worker answered."""
    active = app.control.inspect(timeout=INSPECT_TIMEOUT_S).active() or {}
    tasks = []
    for worker, items in sorted(active.items()):
        for task in items:
            tasks.append({"worker": worker, "name": task.get("name", ""), "id": task.get("id", ""),
                          "progress": _progress(task)})
    return tasks, bool(active)


def celery_status() -> dict:
    """Queues, running tasks and recent failures; each part on its own, so one outage hides only itself."""
    status = {"queues": {}, "tasks": [], "workers_answered": False, "failures": [], "errors": []}
    parts = (("queues", queue_lengths), ("tasks", running_tasks), ("failures", lambda: task_failures(limit=10)))
    for name, read in parts:
        try:
            status[name] = read()
        except Exception as exc:  # the broker or a worker is down: say so, show the rest
            status["errors"].append(f"The {name} cannot be read ({type(exc).__name__}).")
    status["tasks"], status["workers_answered"] = status["tasks"] or ([], False)
    status["failures"] = [{**f, "at": datetime.fromtimestamp(f["at"], tz=UTC)} for f in status["failures"]]
    return status


def status_sample_record(now=None) -> StatusSample:
    """Write one sample of the site's load, and drop samples older than STATUS_SAMPLE_KEEP_DAYS."""
    now = now or timezone.now()
    engines = engine_status()
    try:
        queued = sum(queue_lengths().values())
    except Exception:
        queued = 0
    sample = StatusSample.objects.create(
        at=now, engine_hosts=len(engines["hosts"]), active_streams=engines["active_streams"], capacity=engines["capacity"],
        step_ms_p50=engines["step_ms_p50"], step_ms_p95=engines["step_ms_p95"], queued_tasks=queued)
    StatusSample.objects.filter(at__lt=now - timedelta(days=settings.STATUS_SAMPLE_KEEP_DAYS)).delete()
    return sample


def recent_samples(hours: float = 1, now=None) -> list[StatusSample]:
    now = now or timezone.now()
    return list(StatusSample.objects.filter(at__gte=now - timedelta(hours=hours), at__lte=now))
