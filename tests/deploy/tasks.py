"""A task for the scale-out test, loaded into its workers with --include: it holds the GPU queue's
worker for as long as a hold file exists, as a long reprocessing would."""
import time
from pathlib import Path

from celery import shared_task


@shared_task(bind=True, name="tests.deploy.tasks.held_job")
def held_job(self, log_path: str, name: str, hold_path: str = "") -> None:
    log = Path(log_path)
    with log.open("a") as out:
        out.write(f"start {name} {self.request.hostname}\n")
    while hold_path and Path(hold_path).exists():
        time.sleep(0.1)
    with log.open("a") as out:
        out.write(f"done {name} {self.request.hostname}\n")
