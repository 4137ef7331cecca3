"""Uploading recordings and using reprocessing pages: roles, CSRF, bad and oversized files, audit."""
import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from meetings.models import AuditEvent, Recording, ReprocessJob, Segment, Sharing, Speaker
from meetings.services import meeting_create
from transcription.reprocess.upload import RecordingUploadHandler

pytestmark = pytest.mark.django_db


@pytest.fixture
def meeting(owner, member, outsider):
    meeting = meeting_create(owner=owner, title="Ward round")
    Sharing.objects.create(meeting=meeting, user=member, role=Sharing.Role.VIEW)
    return meeting


@pytest.fixture
def wav_bytes(two_voices):
    with open(two_voices[0], "rb") as fh:
        return fh.read()


def post_file(client, meeting, content: bytes, name="meeting.wav"):
    return client.post(reverse("reprocess:upload", args=[meeting.pk]), {"file": SimpleUploadedFile(name, content, "audio/wav")},
                       HTTP_ACCEPT="application/json")


def test_the_owner_can_upload_and_the_file_is_stored_with_its_checksum(client, owner, meeting, wav_bytes, settings):
    client.force_login(owner)
    response = post_file(client, meeting, wav_bytes)
    assert response.status_code == 202
    recording = Recording.objects.get(meeting=meeting)
    assert recording.sha256 == hashlib.sha256(wav_bytes).hexdigest() and recording.size_bytes == len(wav_bytes)
    assert "meeting" not in recording.file.name  # the uploader's file name never reaches the disk
    assert open(recording.file.path, "rb").read() == wav_bytes
    assert not list((settings.MEDIA_ROOT / "uploads").glob("*"))  # the partial file was renamed into place
    assert ReprocessJob.objects.get(meeting=meeting).stage == ReprocessJob.Stage.QUEUED


def test_uploading_the_same_file_again_reuses_the_stored_recording(client, owner, meeting, wav_bytes):
    client.force_login(owner)
    post_file(client, meeting, wav_bytes)
    post_file(client, meeting, wav_bytes)
    assert Recording.objects.filter(meeting=meeting).count() == 1
    jobs = list(ReprocessJob.objects.filter(meeting=meeting).order_by("id"))
    assert len(jobs) == 2 and jobs[0].stage == ReprocessJob.Stage.CANCELLED  # the older unfinished job is superseded
    meeting.refresh_from_db()
    assert meeting.status == "processing"  # the newer job is still to run


@pytest.mark.parametrize("who", ["member", "outsider"])
def test_it_refuses_people_without_edit_rights(client, meeting, wav_bytes, request, who):
    client.force_login(request.getfixturevalue(who))
    response = post_file(client, meeting, wav_bytes)
    assert response.status_code == 404
    assert not Recording.objects.filter(meeting=meeting).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, meeting_id=meeting.pk).exists()


def test_it_refuses_an_upload_without_the_csrf_token(owner, meeting, wav_bytes):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert post_file(client, meeting, wav_bytes).status_code == 403
    assert not Recording.objects.filter(meeting=meeting).exists()


def test_a_file_that_is_not_audio_is_refused_with_a_clear_message_and_not_queued(client, owner, meeting):
    client.force_login(owner)
    response = post_file(client, meeting, b"Minutes of the meeting\n" * 500, name="minutes.mp3")
    assert response.status_code == 400
    assert "could not be opened as audio" in response.json()["error"]
    assert not Recording.objects.exists() and not ReprocessJob.objects.exists()


def test_a_file_over_the_size_limit_is_refused(client, owner, meeting, settings):
    settings.RECORDING_UPLOAD_MAX_MB = 1
    client.force_login(owner)
    response = post_file(client, meeting, b"\0" * (2 * 1024 * 1024))
    assert response.status_code == 413 and "larger than this site accepts" in response.json()["error"]
    assert not Recording.objects.exists()


def test_the_upload_handler_streams_to_disk_and_stops_at_the_limit(tmp_path):
    handler = RecordingUploadHandler(limit=3 * 1024 * 1024, directory=tmp_path)
    from django.core.files.uploadhandler import StopFutureHandlers, StopUpload

    with pytest.raises(StopFutureHandlers):
        handler.new_file("file", "talk.wav", "audio/wav", None)
    chunk = b"abc" * 350_000
    handler.receive_data_chunk(chunk, 0)
    upload = handler.file_complete(len(chunk))
    assert open(upload.temporary_file_path(), "rb").read() == chunk
    assert upload.sha256 == hashlib.sha256(chunk).hexdigest()
    big = RecordingUploadHandler(limit=1024, directory=tmp_path / "b")
    with pytest.raises(StopFutureHandlers):
        big.new_file("file", "talk.wav", "audio/wav", None)
    with pytest.raises(StopUpload):
        big.receive_data_chunk(b"x" * 2048, 0)
    assert big.too_large and not list((tmp_path / "b").glob("*"))


def test_progress_is_visible_to_viewers_and_hidden_from_outsiders(client, owner, member, outsider, meeting, wav_bytes):
    client.force_login(owner)
    post_file(client, meeting, wav_bytes)
    url = reverse("reprocess:status", args=[meeting.pk])
    client.force_login(member)
    body = client.get(url).json()
    assert body["job"]["stage"] == "queued" and body["job"]["percent"] == 0
    client.force_login(outsider)
    assert client.get(url).status_code == 404


def test_only_editors_can_cancel(client, owner, member, meeting, wav_bytes):
    client.force_login(owner)
    post_file(client, meeting, wav_bytes)
    job = ReprocessJob.objects.get(meeting=meeting)
    url = reverse("reprocess:cancel", args=[meeting.pk, job.pk])
    client.force_login(member)
    assert client.post(url).status_code == 404
    client.force_login(owner)
    assert client.post(url).status_code == 302
    job.refresh_from_db()
    assert job.stage == ReprocessJob.Stage.CANCELLED  # no worker had started it


def test_editors_merge_over_counted_speakers_and_others_cannot(client, owner, member, outsider, meeting):
    a, b, c = (Speaker.objects.create(meeting=meeting, label=f"SPEAKER_0{i}") for i in range(3))
    for i, speaker in enumerate((a, b, c, b)):
        Segment.objects.create(meeting=meeting, start_ms=i * 1000, end_ms=i * 1000 + 900, text=f"t{i}", speaker=speaker, origin="reprocessed")
    url = reverse("meetings:speaker_merge", args=[meeting.pk])
    for who in (member, outsider):
        client.force_login(who)
        assert client.post(url, {"into": a.pk, "speakers": [b.pk]}).status_code == 404
    assert Speaker.objects.filter(meeting=meeting).count() == 3
    client.force_login(owner)
    assert client.post(url, {"into": a.pk, "speakers": [b.pk, c.pk]}).status_code == 302
    assert list(Speaker.objects.filter(meeting=meeting)) == [a]
    assert set(meeting.segments.values_list("speaker_id", flat=True)) == {a.pk}
    event = AuditEvent.objects.get(action=AuditEvent.Action.SPEAKER_MERGE)
    assert event.detail["merged"] == ["SPEAKER_01", "SPEAKER_02"] and event.detail["segments"] == 3


def test_the_meeting_page_shows_the_upload_form_to_editors_only(client, owner, member, meeting):
    client.force_login(owner)
    assert b'id="upload-form"' in client.get(reverse("meetings:detail", args=[meeting.pk])).content
    client.force_login(member)
    assert b'id="upload-form"' not in client.get(reverse("meetings:detail", args=[meeting.pk])).content


def test_editors_can_run_a_failed_job_again_and_viewers_cannot(client, owner, member, meeting, wav_bytes):
    client.force_login(owner)
    post_file(client, meeting, wav_bytes)
    ReprocessJob.objects.update(stage=ReprocessJob.Stage.FAILED, error="The speech model could not be loaded.")
    page = client.get(reverse("meetings:detail", args=[meeting.pk])).content.decode()
    assert "The speech model could not be loaded." in page and 'id="job-retry"' in page
    url = reverse("reprocess:retry", args=[meeting.pk])
    client.force_login(member)
    assert client.post(url).status_code == 404
    client.force_login(owner)
    response = client.post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 202 and response.json()["job"]["stage"] == "queued"
    assert ReprocessJob.objects.filter(meeting=meeting).count() == 2


def test_a_broken_upload_resumes_where_it_stopped(client, owner, meeting, wav_bytes):
    client.force_login(owner)
    start = client.post(reverse("reprocess:upload_start", args=[meeting.pk]), {"name": "ward.wav", "size": len(wav_bytes), "type": "audio/wav"})
    assert start.status_code == 201
    url = reverse("reprocess:upload_piece", args=[meeting.pk, start.json()["token"]])
    half = len(wav_bytes) // 2
    piece = lambda a, b: client.post(url, wav_bytes[a:b], content_type="application/octet-stream", HTTP_X_UPLOAD_OFFSET=str(a))
    assert piece(0, half).json()["received"] == half
    # The connection broke; the page asks how far the server got and sends the rest from there.
    assert client.get(url).json()["received"] == half
    stale = piece(0, half)  # a piece sent twice is refused with the position to go on from
    assert stale.status_code == 409 and stale.json()["received"] == half
    assert piece(half, len(wav_bytes)).json()["received"] == len(wav_bytes)
    done = client.post(reverse("reprocess:upload_finish", args=[meeting.pk, start.json()["token"]]), HTTP_ACCEPT="application/json")
    assert done.status_code == 202
    recording = Recording.objects.get(meeting=meeting)
    assert recording.sha256 == hashlib.sha256(wav_bytes).hexdigest() and open(recording.file.path, "rb").read() == wav_bytes


def test_a_resumable_upload_belongs_to_its_user_and_meeting(client, owner, member, meeting, wav_bytes):
    Sharing.objects.filter(meeting=meeting, user=member).update(role=Sharing.Role.EDIT)
    client.force_login(owner)
    token = client.post(reverse("reprocess:upload_start", args=[meeting.pk]), {"name": "a.wav", "size": 10}).json()["token"]
    client.force_login(member)  # may edit the meeting, but the upload is not theirs
    url = reverse("reprocess:upload_piece", args=[meeting.pk, token])
    assert client.get(url).status_code == 404
    assert client.post(url, b"0123456789", content_type="application/octet-stream", HTTP_X_UPLOAD_OFFSET="0").status_code == 404
    assert client.get(reverse("reprocess:upload_piece", args=[meeting.pk, "..%2F..%2Fetc"])).status_code == 404


def test_resumable_pieces_need_the_csrf_token(owner, meeting):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(reverse("reprocess:upload_start", args=[meeting.pk]), {"name": "a.wav", "size": 10}).status_code == 403
