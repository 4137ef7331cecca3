"""Pages with meeting content are never cached, and refusals look like the site's own "not found" (real Daphne)."""
import re
import wave

import pytest
from django.contrib.auth.models import User
from django.urls import URLPattern, URLResolver, get_resolver

from meetings.models import Sharing
from tests.factories import attach_recording, meeting_with_transcript

pytestmark = pytest.mark.django_db(transaction=True)

# Every URL that answers GET with meeting content (titles, transcript, hits, captions, audio, jobs).
CONTENT_URLS = {
    "meetings:list": "/",
    "meetings:detail": "/meetings/{m}/",
    "meetings:export": "/meetings/{m}/export/txt",
    "meetings:recording_media": "/meetings/{m}/recordings/{r}/audio",
    "meetings:search": "/search?q=kidney",
    "live:follow": "/meetings/{m}/live/",
    "live:host": "/meetings/{m}/live/host",
    "live:recorder": "/meetings/{m}/live/recorder",
    "reprocess:status": "/meetings/{m}/reprocessing",
    "reprocess:upload_piece": "/meetings/{m}/recordings/uploads/{token}",
    "voices:mine": "/voices/",
}
# Routes that take only POST, and so show no page to cache.
POST_ONLY = {"meetings:create", "meetings:settings", "meetings:delete", "meetings:segment_edit", "meetings:speaker_rename",
             "meetings:speaker_merge", "meetings:share", "meetings:unshare", "reprocess:upload", "reprocess:upload_start",
             "reprocess:upload_finish", "reprocess:cancel", "reprocess:retry", "reprocess:speakers", "live:preferences",
             "voices:enrol", "voices:unlink", "voices:delete", "voices:console_delete", "voices:console_person_delete",
             "voices:console_purge"}
# Staff pages: the same middleware marks them, and they hold no transcript text.
STAFF_ONLY = {"voices:console"}


def route_names(namespaces=("meetings", "live", "reprocess", "voices")) -> set[str]:
    names = set()
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.namespace in namespaces:
            names |= {f"{entry.namespace}:{p.name}" for p in entry.url_patterns if isinstance(p, URLPattern)}
    return names


@pytest.fixture
def meeting(transactional_db, tmp_path):
    alice = User.objects.create_user("alice", password="alice-password-1")
    User.objects.create_user("carol", password="carol-password-1")
    meeting = meeting_with_transcript(alice, title="Oncology board")
    wav = tmp_path / "round.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000), out.writeframes(bytes(3200))
    recording = attach_recording(meeting, wav)
    return meeting, recording


def test_every_content_route_is_checked_here():
    assert route_names() - set(CONTENT_URLS) - POST_ONLY - STAFF_ONLY == set()


def test_every_page_with_meeting_content_says_no_store(site, visitor, meeting):
    meeting, recording = meeting
    alice = visitor()
    alice.sign_in("alice", "alice-password-1")
    status, _, body = alice.post(f"/meetings/{meeting.pk}/recordings/uploads", {"size": 10, "name": "a.wav"})
    token = re.search(r'"token": "(\w+)"', body)[1]
    for name, template in CONTENT_URLS.items():
        status, headers, body = alice.request(template.format(m=meeting.pk, r=recording.pk, token=token))
        assert status == 200, (name, status)
        assert "no-store" in headers["Cache-Control"], (name, headers["Cache-Control"])
    assert "kidney" in alice.request("/search?q=kidney")[2]  # the search page did show content


def test_a_colleague_without_access_gets_the_sites_not_found_page_same_as_for_no_meeting(site, visitor, meeting):
    meeting, _ = meeting
    carol = visitor()
    carol.sign_in("carol", "carol-password-1")
    status, headers, refused = carol.request(f"/meetings/{meeting.pk}/")
    assert status == 404
    assert "ask them to share the meeting with you" in refused and "scribe.css" in refused
    assert "Oncology" not in refused and "<h1>Not Found</h1>" not in refused
    status, _, missing = carol.request(f"/meetings/{meeting.pk + 1000}/")
    assert status == 404

    def strip(page):
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", page)

    assert strip(refused) == strip(missing)  # nothing tells an existing meeting from none
