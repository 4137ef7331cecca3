"""Recent task failures for the status page. Celery keeps no results here, so failures are noted in Redis."""
import logging
import time

from celery.signals import task_failure

from config.status_store import record_task_failure

log = logging.getLogger(__name__)


@task_failure.connect
def _note_task_failure(sender=None, task_id=None, exception=None, **kwargs):
    try:
        record_task_failure({"task": getattr(sender, "name", str(sender)), "id": task_id, "at": time.time(),
                             "error": f"{type(exception).__name__}: {exception}"[:500]})
    except Exception:  # Redis down: the failure is still in the worker's log
        log.warning("could not note the failure of task %s", task_id)
