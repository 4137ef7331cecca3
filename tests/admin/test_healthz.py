"""/healthz answers monitoring without a login: 200 when every part works, 503 naming the part that does not."""
import pytest

from config.status_store import publish_engine
from tests.servers import celery_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock(), celery_worker(tmp_path_factory.mktemp("healthz"), name="healthz") as proc:
        yield proc


@pytest.fixture
def speech_model(settings, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    settings.ASR_MODEL_DIR = str(tmp_path)


# First in the file: the module's worker starts with the first test that asks for it.
def test_it_names_celery_when_no_worker_answers(client, speech_model):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["celery"]


def test_a_caller_can_ask_for_only_the_parts_it_needs(client):
    # The installer checks the web process before any worker runs; a web-only load balancer likewise.
    response = client.get("/healthz?parts=database,redis")
    assert response.status_code == 200, response.json()
    assert set(response.json()["checks"]) == {"database", "redis"}
    assert client.get("/healthz?parts=database,celery").json()["failing"] == ["celery"]
    response = client.get("/healthz?parts=database,everything")
    assert response.status_code == 400 and response.json()["unknown_parts"] == ["everything"]


def test_it_is_ok_when_database_redis_a_model_and_a_worker_answer(client, worker, speech_model):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert {name for name, part in body["checks"].items() if part["ok"]} == {"database", "redis", "model", "engine", "celery"}
    assert body["checks"]["celery"]["workers"] >= 1


def test_it_names_the_missing_speech_model(client, worker, settings):
    settings.ASR_MODEL_DIR = ""
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["model"]


def test_it_names_redis_when_redis_is_unreachable(client, settings, worker):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "redis" in response.json()["failing"]
    assert response.json()["checks"]["database"]["ok"] is True


def test_it_names_the_engine_when_an_engine_host_cannot_serve(client, worker, speech_model):
    publish_engine("test-host:1", {"serving": False, "active_streams": 0, "capacity": 0, "failure": "model folder missing"})
    try:
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["failing"] == ["engine"]
        assert "model folder missing" not in response.content.decode()  # no detail for an anonymous caller
    finally:
        from config.status_store import key, redis_client

        redis_client().delete(key("engine", "test-host:1"))


def test_it_needs_no_login_and_shows_no_paths_or_names(client, worker, settings, speech_model):
    response = client.get("/healthz")
    text = response.content.decode()
    assert response.status_code == 200
    assert settings.DATABASES["default"]["NAME"] not in text and "redis://" not in text and "/" not in text.replace("\\/", "")
