"""Settings come from the environment, fail loudly on bad values, and pass Django's deployment checks."""
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import envbool, envint, envsecret
from tests.servers import REPO, child_env


def test_bad_values_stop_start_up_with_the_variable_named(monkeypatch):
    monkeypatch.setenv("SCRIBE_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SCRIBE_X must be true or false"):
        envbool("SCRIBE_X")
    monkeypatch.setenv("SCRIBE_X", "5000")
    with pytest.raises(ImproperlyConfigured, match="between 80 and 2400"):
        envint("SCRIBE_X", 480, minimum=80, maximum=2400)


def test_secrets_can_come_from_a_file(monkeypatch, tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    monkeypatch.setenv("SCRIBE_PW_FILE", str(tmp_path / "pw"))
    assert envsecret("SCRIBE_PW") == "s3cret"
    monkeypatch.setenv("SCRIBE_PW_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        envsecret("SCRIBE_PW")


def test_deployment_checks_pass_behind_https(db):
    env = child_env(DJANGO_SETTINGS_MODULE="config.settings", SCRIBE_HTTPS="true", SCRIBE_ALLOWED_HOSTS="scribe.example.internal")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
