"""Importing, verifying and activating a model from the console: the import runs in a real Celery worker
and the page reports its progress."""
import time

import pytest
from django.urls import reverse

from administration.models import ModelVersion
from meetings.models import AuditEvent
from tests.servers import celery_worker

from .conftest import flip_bit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def worker(tmp_path_factory, django_db_blocker):
    with django_db_blocker.unblock(), celery_worker(tmp_path_factory.mktemp("console-models"), name="console-models") as proc:
        yield proc


def wait_until_read(client, version_id: int, timeout: float = 90) -> dict:
    """Poll the progress endpoint like the page does; returns the last answer and every percent seen."""
    url = reverse("console:model_progress", args=[version_id])
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(url, HTTP_ACCEPT="application/json").json()
        seen.append(data["percent"])
        if not data["checking"]:
            return {**data, "seen": seen}
        time.sleep(0.2)
    raise AssertionError(f"the worker did not finish reading the folder; progress seen: {seen}")


def test_an_administrator_imports_verifies_and_activates_a_model_from_the_console(admin_client, admin_user, model_folder, worker):
    response = admin_client.post(reverse("console:model_import"), {"path": str(model_folder), "kind": "asr", "name": "voxtral-tiny"})
    version = ModelVersion.objects.get(name="voxtral-tiny")
    assert response.status_code == 302 and response["Location"] == reverse("console:model", args=[version.pk])
    page = admin_client.get(response["Location"]).content.decode()
    assert 'data-progress-url="' in page and "<progress" in page

    done = wait_until_read(admin_client, version.pk)
    assert done["status"] == "imported" and done["percent"] == 100 and done["error"] == ""
    version.refresh_from_db()
    assert version.progress_bytes == version.total_bytes == version.size_bytes > 60_000_000
    assert "model.safetensors" in version.files and version.imported_by == admin_user
    page = admin_client.get(reverse("console:model", args=[version.pk])).content.decode()
    assert "Imported (not yet verified)" in page and version.files["model.safetensors"]["sha256"] in page
    assert "Activate</button>" not in page  # not before verification

    admin_client.post(reverse("console:model_verify", args=[version.pk]))
    assert wait_until_read(admin_client, version.pk)["status"] == "verified"

    response = admin_client.post(reverse("console:model_activate", args=[version.pk]), follow=True)
    assert "voxtral-tiny is now active" in response.content.decode()
    version.refresh_from_db()
    assert version.status == "active"
    actions = list(AuditEvent.objects.exclude(action="login").order_by("id").values_list("action", "actor__username"))
    assert actions == [("model_import", "dana"), ("model_verify", "dana"), ("model_activate", "dana")]


def test_a_corrupt_copy_fails_in_the_worker_and_the_page_names_the_file(admin_client, model_folder, worker):
    from django.core.management import call_command

    call_command("import_model", str(model_folder), "--name", "original")
    flip_bit(model_folder / "tekken.json", offset=100)
    response = admin_client.post(reverse("console:model_import"), {"path": str(model_folder), "name": "copy"})
    version = ModelVersion.objects.get(name="copy")
    done = wait_until_read(admin_client, version.pk)
    assert done["status"] == "failed" and "tekken.json is corrupt" in done["error"]
    page = admin_client.get(response["Location"]).content.decode()
    assert "tekken.json is corrupt" in page and "Activate</button>" not in page


def test_a_bad_path_is_refused_on_the_form_without_queueing_anything(admin_client, tmp_path):
    response = admin_client.post(reverse("console:model_import"), {"path": str(tmp_path / "missing")})
    assert response.status_code == 400
    assert "There is no folder at" in response.content.decode()
    assert not ModelVersion.objects.exists()


def test_a_verification_that_finds_a_changed_file_marks_the_model_failed(admin_client, model_folder, worker):
    from django.core.management import call_command

    call_command("import_model", str(model_folder), "--name", "tiny")
    version = ModelVersion.objects.get()
    flip_bit(model_folder / "model.safetensors")
    (model_folder / "scribe-manifest.json").unlink()  # even without the folder's manifest, the registry remembers
    admin_client.post(reverse("console:model_verify", args=[version.pk]))
    done = wait_until_read(admin_client, version.pk)
    assert done["status"] == "failed" and "model.safetensors is corrupt" in done["error"]
    assert AuditEvent.objects.get(action="model_verify").detail["ok"] is False
