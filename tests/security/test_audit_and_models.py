"""The audit log keeps no search text; model weights are imported only from the model roots (real Daphne).

Before: /console/audit/ showed every user's search text to administrators, and a folder under /tmp
could be registered as a model, with messages that told whether a path existed.
"""
import importlib
import shutil
import subprocess
import sys

import pytest
from django.apps import apps
from django.contrib.auth.models import User

from administration.models import ModelVersion
from meetings.audit import audit
from meetings.models import AuditEvent
from tests.factories import meeting_with_transcript
from tests.servers import REPO, child_env

pytestmark = pytest.mark.django_db(transaction=True)
OUTSIDE = "Model folders can only be imported from the"


@pytest.fixture
def people(transactional_db):
    alice = User.objects.create_user("alice", password="alice-password-1")
    User.objects.create_user("dana", password="dana-password-1", is_staff=True, is_superuser=True)
    return alice


def test_administrators_see_who_searched_and_how_many_hits_but_not_what_for(site, visitor, people):
    meeting_with_transcript(people)
    alice = visitor()
    alice.sign_in("alice", "alice-password-1")
    assert "kidney" in alice.request("/search?q=kidney+function")[2]
    event = AuditEvent.objects.get(action=AuditEvent.Action.SEARCH)
    assert event.actor_username == "alice" and event.detail["hits"] >= 1
    assert "kidney" not in str(event.detail)

    dana = visitor()
    dana.sign_in("dana", "dana-password-1")
    status, _, page = dana.request("/console/audit/?action=search")
    assert status == 200 and "alice" in page and "hits=" in page
    status, _, csv_text = dana.request("/console/audit/export.csv")
    assert status == 200 and "search" in csv_text
    assert "kidney" not in page and "kidney" not in csv_text


def test_search_text_kept_by_earlier_versions_is_removed_on_upgrade(people):
    old = audit(None, AuditEvent.Action.SEARCH, user=people, detail={"query": "HIV result Smith", "hits": 3})
    migration = importlib.import_module("meetings.migrations.0006_audit_lockouts_and_private_search")
    migration.remove_search_text(apps, None)
    old.refresh_from_db()
    assert old.detail == {"hits": 3, "words": 3}


@pytest.fixture
def outside_folder(tmp_path, tiny_model_dir):
    return shutil.copytree(tiny_model_dir, tmp_path / "voxtral-tiny")


def test_the_console_refuses_folders_outside_the_model_roots_with_one_message(site, visitor, people, outside_folder, model_root):
    dana = visitor()
    dana.sign_in("dana", "dana-password-1")
    answers = []
    for path in (outside_folder, "/nonexistent/voxtral", "/etc", f"{model_root}/../{outside_folder.name}"):
        status, _, page = dana.post("/console/models/import", {"path": str(path), "kind": "", "name": ""})
        assert status == 400 and OUTSIDE in page, path
        answers.append(page.split(OUTSIDE, 1)[1].split("</", 1)[0])
    assert len(set(answers)) == 1  # the same words whether the path exists or not
    assert not ModelVersion.objects.exists()

    inside = shutil.copytree(outside_folder, model_root / "voxtral-tiny")
    status, headers, _ = dana.post("/console/models/import", {"path": str(inside), "kind": "", "name": ""})
    assert status == 302 and ModelVersion.objects.filter(path=str(inside)).exists()


def test_the_import_command_refuses_folders_outside_the_model_roots_the_same_way(people, outside_folder, model_root):
    outputs = []
    for path in (outside_folder, "/nonexistent/voxtral"):
        done = subprocess.run([sys.executable, "manage.py", "import_model", str(path)], cwd=REPO, capture_output=True,
                              text=True, env=child_env(SCRIBE_MODEL_ROOTS=model_root), timeout=120)
        assert done.returncode != 0 and OUTSIDE in done.stderr, done.stderr[-2000:]
        outputs.append(done.stderr.strip().splitlines()[-1])
    assert outputs[0] == outputs[1]
    assert not ModelVersion.objects.exists()
