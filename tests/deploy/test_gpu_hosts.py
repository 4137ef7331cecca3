"""Two GPU workers on one queue, as on two GPU hosts: both take work, and a task whose worker dies
mid-way is run again by the other (acks_late with the broker's visibility timeout)."""
import time

import pytest

from config.celery import app
from tests.servers import celery_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
VISIBILITY_S = 3


def wait_for_line(log, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith(prefix):
                return line
        time.sleep(0.2)
    raise AssertionError(f"no {prefix!r} within {timeout}s; log: {log.read_text() if log.exists() else '(none)'}")


def test_a_task_killed_with_its_host_is_redone_by_the_other_gpu_worker(tmp_path, settings):
    log, hold = tmp_path / "jobs.log", tmp_path / "hold"
    hold.touch()
    options = dict(queues=settings.GPU_QUEUE, include="tests.deploy.tasks", SCRIBE_CELERY_VISIBILITY_TIMEOUT=VISIBILITY_S)
    with celery_worker(tmp_path, name="gpu-host-a", **options) as host_a, celery_worker(tmp_path, name="gpu-host-b", **options) as host_b:
        app.send_task("tests.deploy.tasks.held_job", args=[str(log), "long", str(hold)], queue=settings.GPU_QUEUE)
        first = wait_for_line(log, "start long", 30).split()[-1]
        # The busy worker takes nothing more (prefetch 1 with acks_late), so the other one runs the next task.
        app.send_task("tests.deploy.tasks.held_job", args=[str(log), "short"], queue=settings.GPU_QUEUE)
        other = wait_for_line(log, "done short", 30).split()[-1]
        assert other != first

        # The first host dies (power cut: no chance to hand the task back).
        dead, alive = (host_a, host_b) if first.startswith("gpu-host-a") else (host_b, host_a)
        dead.kill()
        dead.wait()
        hold.unlink()
        redone = [line for line in log.read_text().splitlines() if line.startswith("start long")]
        assert len(redone) == 1
        wait_for_line(log, "done long", VISIBILITY_S + 30)
        assert alive.poll() is None
    lines = log.read_text().splitlines()
    assert [line.split()[-1] for line in lines if line.startswith("start long")] == [first, other]
    assert lines.count(f"done long {other}") == 1
