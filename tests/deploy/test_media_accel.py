"""Recordings behind nginx: Django checks access and audits, then hands the file over with X-Accel-Redirect."""
import os
import subprocess
import sys
import wave

import pytest
from django.urls import reverse

from meetings.models import AuditEvent
from tests.factories import attach_recording, meeting_with_transcript
from tests.servers import REPO

pytestmark = pytest.mark.django_db


def silent_wav(path, seconds=1):
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16_000)
        out.writeframes(b"\0\0" * 16_000 * seconds)
    return path


@pytest.fixture
def recording(owner, tmp_path):
    return attach_recording(meeting_with_transcript(owner), silent_wav(tmp_path / "round.wav"))


def _url(recording, **query):
    url = reverse("meetings:recording_media", args=[recording.meeting_id, recording.pk])
    return url + ("?download=1" if query.get("download") else "")


def test_the_owner_gets_an_accel_redirect_into_the_internal_location_and_it_is_audited(client, owner, recording, settings):
    settings.MEDIA_ACCEL_REDIRECT = "/protected-media/"
    client.force_login(owner)
    response = client.get(_url(recording, download=True))
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == "/protected-media/" + recording.file.name
    assert response["Content-Type"] == "audio/wav"
    assert response["Cache-Control"] == "private, no-store"
    assert "attachment" in response["Content-Disposition"]
    assert response.content == b""  # nginx sends the bytes
    assert AuditEvent.objects.filter(action="media_download", actor=owner).count() == 1


def test_an_outsider_gets_no_redirect(client, outsider, recording, settings):
    settings.MEDIA_ACCEL_REDIRECT = "/protected-media/"
    client.force_login(outsider)
    response = client.get(_url(recording))
    assert response.status_code == 404
    assert "X-Accel-Redirect" not in response


def test_without_the_setting_django_streams_the_file_itself(client, owner, recording, settings):
    settings.MEDIA_ACCEL_REDIRECT = ""
    client.force_login(owner)
    response = client.get(_url(recording))
    assert "X-Accel-Redirect" not in response
    assert b"".join(response.streaming_content)[:4] == b"RIFF"


def test_a_malformed_accel_location_stops_start_up_with_the_variable_named():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "SCRIBE_MEDIA_ACCEL_REDIRECT": "protected-media"}
    result = subprocess.run([sys.executable, "-c", "from django.conf import settings; settings.MEDIA_ROOT"], cwd=REPO,
                            env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "SCRIBE_MEDIA_ACCEL_REDIRECT must be a path like /protected-media/" in result.stderr
