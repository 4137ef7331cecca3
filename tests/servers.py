"""Start the real application server (Daphne) and Celery workers as child processes for tests."""
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra) -> dict:
    """Environment for a child that must see the test database, media folder and egress guard."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings_test",
        SCRIBE_DB_NAME=connection.settings_dict["NAME"],
        SCRIBE_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s:\n{log.read_text()[-4000:]}")


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def daphne_server(log_dir: Path, **env):
    """Yield the base URL of a Daphne server running config.asgi against the test database."""
    port = free_port()
    log = log_dir / f"daphne-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            cwd=REPO, env=child_env(**env), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@contextmanager
def celery_worker(log_dir: Path, *, queues: str = "cpu,gpu", name: str = "test", pool: str = "solo", include: str = "", **env):
    """A real Celery worker process consuming the test broker; `include`: extra task modules to load.

    The solo pool runs tasks in the worker's main loop, so it cannot answer `inspect` while a task runs;
    pass pool="prefork" where a test watches running tasks.
    """
    log = log_dir / f"celery-{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-n", f"{name}@%h",
             "--concurrency", "1", "--pool", pool, "--loglevel", "INFO", *(["--include", include] if include else [])],
            cwd=REPO, env=child_env(**env), stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def caption_worker(log_dir: Path, *, name: str = "captions", **env):
    """A `manage.py run_caption_worker` process, ready once its engine is loaded and it listens."""
    log = log_dir / f"caption-worker-{name}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "manage.py", "run_caption_worker"], cwd=REPO,
                                env=child_env(**env), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "caption worker listening" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"caption worker did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        stop_process(proc)
