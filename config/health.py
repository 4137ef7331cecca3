"""GET /healthz: is every part the site needs up? For load balancers, monitoring and the deploy scripts.

No login and nothing sensitive: part names, ok or not, and counts. 200 when every part is ok, 503 with
the failing parts named otherwise. Each check has a short timeout so that a dead part cannot hang
the probe.
"""
import time

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.status_store import engine_hosts, redis_client

REDIS_TIMEOUT_S = 1.0
CELERY_TIMEOUT_S = 1.0


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("select 1")
    return {"ok": True}


def check_redis() -> dict:
    redis_client(timeout=REDIS_TIMEOUT_S).ping()
    return {"ok": True}


def check_celery() -> dict:
    from config.celery import app

    # limit=1: return as soon as one worker answers instead of waiting out the whole timeout.
    replies = app.control.ping(timeout=CELERY_TIMEOUT_S, limit=1)
    return {"ok": bool(replies), "workers": len(replies)}


def check_engine() -> dict:
    """Every process that hosts a speech engine reports here; one whose engine died or failed to load fails.

    A site with no engine loaded yet is not failing: engines load on first use, and a new site
    may not have imported a model. The status page shows that state.
    """
    hosts = engine_hosts(redis_client(timeout=REDIS_TIMEOUT_S))
    broken = [h for h in hosts if not h.get("serving")]
    return {
        "ok": not broken,
        "hosts": len(hosts),
        "failing_hosts": len(broken),
        "active_streams": sum(h.get("active_streams", 0) for h in hosts),
        "capacity": sum(h.get("capacity", 0) for h in hosts),
    }


def check_model() -> dict:
    """A speech model is active and on disk; without one no caption or transcript can be made."""
    from transcription.engine_host import speech_model_ready

    return {"ok": speech_model_ready()}


CHECKS = {"database": check_database, "redis": check_redis, "model": check_model, "engine": check_engine,
          "celery": check_celery}


def run_checks(parts=CHECKS) -> dict[str, dict]:
    results = {}
    for name in parts:
        check = CHECKS[name]
        started = time.monotonic()
        try:
            result = check()
        except Exception as exc:  # a check that cannot even run is a failed part; the type says enough
            result = {"ok": False, "error": type(exc).__name__}
        result["ms"] = round((time.monotonic() - started) * 1000, 1)
        results[name] = result
    return results


@require_GET
@never_cache
@login_not_required
def healthz(request):
    """`?parts=database,redis` checks only those parts: a web-only load balancer, or the installer
    before any worker runs, asks for what it needs."""
    parts = [p for p in request.GET.get("parts", "").split(",") if p] or list(CHECKS)
    unknown = [p for p in parts if p not in CHECKS]
    if unknown:
        return JsonResponse({"status": "bad_request", "unknown_parts": unknown[:10], "parts": list(CHECKS)}, status=400)
    checks = run_checks(parts)
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "failing" if failing else "ok", "failing": failing, "checks": checks}
    return JsonResponse(body, status=503 if failing else 200)
