"""The status page against real services: an engine with a live stream, a Celery worker, Redis queues,
beat's minute samples drawn as an accessible chart."""
import re
import time

import numpy as np
import pytest
from django.urls import reverse

from administration import tasks
from administration.models import StatusSample
from config.status_store import key, redis_client
from tests.servers import celery_worker
from transcription import engine_host

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def cpu_worker(tmp_path_factory, django_db_blocker):
    """A worker for the cpu queue only, so that work sent to the gpu queue waits there."""
    # prefork: the worker's main process answers `inspect` while a child runs the task.
    with django_db_blocker.unblock(), celery_worker(tmp_path_factory.mktemp("status"), queues="cpu", name="status", pool="prefork") as proc:
        yield proc


@pytest.fixture
def engine_with_a_stream(settings, tiny_model_dir):
    settings.ASR_MODEL_DIR, settings.ASR_DEVICE, settings.ASR_MAX_STREAMS = str(tiny_model_dir), "cpu", 2
    engine_host.reset()
    # Reports of worker processes that earlier tests stopped live on for ENGINE_TTL_S: this engine is the only one.
    client = redis_client()
    for name in client.scan_iter(match=key("engine", "*")):
        client.delete(name)
    engine = engine_host.get_engine()
    stream = engine.open_stream(480)
    stream.push((np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16))
    deadline = time.monotonic() + 60
    while engine.health()["steps"] < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    engine_host.publish_health()
    yield engine
    stream.abort()
    engine_host.reset()
    redis_client().delete(key("engine", engine_host.HOST_ID))


def wait_for(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_the_status_page_shows_the_engine_its_stream_the_queues_and_a_failed_task(admin_client, cpu_worker, engine_with_a_stream, settings):
    for _ in range(2):
        tasks.apply_retention.apply_async(queue="gpu")  # nobody consumes gpu here: they wait
    tasks.import_model_version.delay("not-a-number")  # fails in the worker
    wait_for(lambda: "ValueError" in admin_client.get(reverse("console:status")).content.decode())  # noted by the worker

    page = admin_client.get(reverse("console:status")).content.decode()
    assert engine_host.HOST_ID in page and "voxtral-tiny" in page and "Serving" in page
    assert "<strong>1</strong> live stream of <strong>2</strong>" in page
    assert re.search(r'<th scope="row">gpu</th><td>2</td>', page)
    assert "import_model_version" in page  # the failure names the task
    assert "No worker answered" not in page and "cannot be read" not in page
    from administration.status import _broker_client

    _broker_client().delete(settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] + "gpu")


def test_beat_samples_are_recorded_by_the_worker_and_drawn_with_words_and_a_table(admin_client, cpu_worker, engine_with_a_stream):
    tasks.record_status_sample.delay()
    sample = wait_for(lambda: StatusSample.objects.first())
    assert (sample.active_streams, sample.capacity, sample.engine_hosts) == (1, 2, 1)
    assert sample.step_ms_p50 is not None and sample.step_ms_p95 >= sample.step_ms_p50

    page = admin_client.get(reverse("console:status")).content.decode()
    svg = re.search(r'<svg[^>]*aria-labelledby="streams-title streams-desc".*?</svg>', page, re.S).group(0)
    assert 'role="img"' in svg and "<title id=\"streams-title\">Live streams, last hour</title>" in svg
    assert "Latest: active 1, capacity 2 streams" in svg and "<polyline" in svg
    assert "<caption>One sample a minute over the last hour</caption>" in page
    assert f'{sample.at:%H:%M}</time></th><td>1</td><td>2</td>' in page


def test_old_samples_are_dropped_and_the_chart_says_when_there_are_none(admin_client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from administration.status import status_sample_record

    old = StatusSample.objects.create(at=timezone.now() - timedelta(days=settings.STATUS_SAMPLE_KEEP_DAYS + 1))
    status_sample_record()
    assert not StatusSample.objects.filter(pk=old.pk).exists()
    StatusSample.objects.all().delete()
    page = admin_client.get(reverse("console:status")).content.decode()
    assert "No samples were recorded in this period." in page


def test_a_running_import_is_listed_with_its_progress(admin_client, admin_user, cpu_worker, tmp_path):
    # A pyannote-style folder with one 24 GB sparse file (no disk used): hashing it takes well over ten
    # seconds even on an idle machine, and its progress must move while that one file is read.
    (tmp_path / "config.yaml").write_text("pipeline: {}\n")
    with open(tmp_path / "weights.bin", "wb") as fh:
        fh.truncate(24 * 1024**3)
    admin_client.post(reverse("console:model_import"), {"path": str(tmp_path), "name": "big"})

    def running_row():
        page = admin_client.get(reverse("console:status")).content.decode()
        match = re.search(r'<th scope="row">administration.tasks.import_model_version</th><td>[^<]*</td><td><progress[^>]*value="(\d+)"', page)
        return match and int(match.group(1)) > 0 and match

    wait_for(running_row, timeout=60)
    from administration.models import ModelVersion

    wait_for(lambda: not ModelVersion.objects.get(name="big").checking, timeout=300)


def test_on_a_gpu_the_page_shows_memory_used_and_free(admin_client, monkeypatch):
    """No GPU in CI: an engine that reports a CUDA device, and CUDA's memory figures, stand in for one."""
    import torch

    class GpuEngine:
        device = torch.device("cuda:0")

        def health(self):
            return {"alive": True, "active_streams": 3, "capacity": 60, "step_ms_p50": 31.0, "step_ms_p95": 44.0,
                    "last_step_at": time.time(), "streams": {1: {"lag_ms": 120.0, "backlog_ms": 0, "delay_ms": 480}}}

    gib = 1024**3
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (12 * gib, 80 * gib))
    monkeypatch.setattr(engine_host, "_engine", GpuEngine())
    monkeypatch.setattr(engine_host, "_engine_choice", engine_host.ModelChoice(path="/srv/models/v", name="voxtral-2026-02"))
    health = engine_host.host_health()
    assert (health["gpu_used_bytes"], health["gpu_free_bytes"], health["device"]) == (68 * gib, 12 * gib, "cuda:0")
    engine_host.publish_health()
    try:
        page = admin_client.get(reverse("console:status")).content.decode()
    finally:
        redis_client().delete(key("engine", engine_host.HOST_ID))
    assert "68.0\xa0GB / 12.0\xa0GB" in page and "cuda:0" in page and "<td>3 / 60</td>" in page and "<td>120</td>" in page


def test_the_page_shows_both_capacity_limits_memory_and_step_time(admin_client, monkeypatch, settings):
    """An engine whose step time, not memory, limits the live streams it admits says so on the page."""
    import torch

    class GpuEngine:
        device = torch.device("cuda:0")

        def health(self):
            return {"alive": True, "active_streams": 100, "capacity": 112, "capacity_memory": 125, "capacity_time": 112,
                    "step_budget_ms": 60.0, "step_ms_p50": 48.0, "step_ms_p95": 52.0, "last_step_at": time.time(),
                    "streams": {}}

    gib = 1024**3
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (3 * gib, 141 * gib))
    monkeypatch.setattr(engine_host, "_engine", GpuEngine())
    monkeypatch.setattr(engine_host, "_engine_choice", engine_host.ModelChoice(path="/srv/models/v", name="voxtral-2026-02"))
    client = redis_client()
    for name in client.scan_iter(match=key("engine", "*")):
        client.delete(name)
    engine_host.publish_health()
    try:
        page = admin_client.get(reverse("console:status")).content.decode()
    finally:
        client.delete(key("engine", engine_host.HOST_ID))
    assert "of <strong>112</strong> possible" in page and "GPU memory holds 125; step time allows 112" in page
    assert "100 / 112<br><span class=\"hint\">memory 125, time 112 (step budget 60 ms)" in page
    settings.ASR_STEP_BUDGET_MS, settings.ASR_KV_CACHE = 50, "float8"
    options = engine_host.engine_options()
    assert (options.step_budget_ms, options.kv_cache) == (50, "float8")
