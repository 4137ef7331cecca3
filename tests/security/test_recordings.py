"""Limits before work on recordings, and resumable uploads that stay consistent (real Daphne).

Before: a 4 MB FLAC holding 6 h of silence was queued and held the only worker; two pieces sent at once
for one offset could both be written, and abandoned uploads were never removed.
"""
import io
import os
import subprocess
import threading
import time
import wave

import pytest
from django.contrib.auth.models import User

from config.celery import app
from meetings.models import Recording, ReprocessJob
from meetings.services import meeting_create
from tests.factories import attach_recording
from transcription import tasks
from transcription.reprocess import decode, resumable
from transcription.reprocess.upload import upload_dir

from .conftest import upload

pytestmark = pytest.mark.django_db(transaction=True)


def wav(seconds: float, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate), w.writeframes(bytes(int(seconds * rate) * 2))
    return out.getvalue()


@pytest.fixture
def alice(transactional_db):
    return User.objects.create_user("alice", password="alice-password-1")


@pytest.fixture
def signed_in(visitor, alice):
    person = visitor()
    person.sign_in("alice", "alice-password-1")
    return person


def test_a_small_file_holding_more_than_the_longest_recording_is_refused_before_anything_is_queued(site, signed_in, alice, tmp_path):
    flac = tmp_path / "silence.flac"  # 66 minutes of digital silence: about 100 kB
    subprocess.run(["sox", "-D", "-n", "-r", "4000", "-c", "1", "-b", "16", str(flac), "trim", "0", "3960"], check=True)
    assert flac.stat().st_size < 1024 * 1024
    meeting = meeting_create(owner=alice, title="Ward round")
    upload_dir().mkdir(parents=True, exist_ok=True)
    before = set(upload_dir().iterdir())
    status, answer = upload(signed_in, meeting.pk, flac.read_bytes())
    assert status == 400
    assert answer["error"].startswith("This recording is longer than the 1 hour this site transcribes.")
    assert not ReprocessJob.objects.exists() and not Recording.objects.exists()
    assert set(upload_dir().iterdir()) == before  # nothing left behind


def test_decoding_stops_at_the_limit_whatever_the_header_said(tmp_path):
    source = tmp_path / "long.wav"
    source.write_bytes(wav(6, rate=8000))  # decoded and resampled frame by frame
    with pytest.raises(decode.RecordingTooLong):
        decode.decode_to_pcm(str(source), str(tmp_path / "out.pcm"), max_samples=16000 * 2)
    copied = tmp_path / "live.wav"
    copied.write_bytes(wav(6))  # 16 kHz mono: copied, not decoded
    with pytest.raises(decode.RecordingTooLong):
        decode.decode_to_pcm(str(copied), str(tmp_path / "out.pcm"), max_samples=16000 * 2)
    assert not (tmp_path / "out.pcm").exists() and not (tmp_path / "out.pcm.part").exists()


def test_decoding_runs_on_the_cpu_queue_never_the_gpu_queue():
    route = app.amqp.router.route({}, tasks.reprocess_decode.name, args=(1,), kwargs={})
    assert route["queue"].name == "cpu"


def test_a_person_may_have_only_so_many_recordings_waiting(site, signed_in, alice, tmp_path):
    source = tmp_path / "round.wav"
    source.write_bytes(wav(1))
    for title in ("Monday", "Tuesday"):
        earlier = meeting_create(owner=alice, title=title)
        ReprocessJob.objects.create(meeting=earlier, recording=attach_recording(earlier, source), created_by=alice)
    meeting = meeting_create(owner=alice, title="Wednesday")
    status, answer = upload(signed_in, meeting.pk, wav(2))
    assert status == 400 and "already have 2 recordings waiting" in answer["error"]
    assert not ReprocessJob.objects.filter(meeting=meeting).exists()


def test_two_pieces_for_one_offset_sent_together_leave_a_consistent_upload(site, signed_in, alice):
    meeting = meeting_create(owner=alice, title="Ward round")
    data = wav(40)  # 1.28 MB: two pieces
    status, _, body = signed_in.post(f"/meetings/{meeting.pk}/recordings/uploads", {"size": len(data), "name": "a.wav"})
    token = __import__("json").loads(body)["token"]
    url = f"/meetings/{meeting.pk}/recordings/uploads/{token}"
    answers = []

    def send(offset, piece):
        answers.append(signed_in.request(url, data=piece, headers={"X-Upload-Offset": str(offset), "X-CSRFToken": signed_in.cookie("csrftoken")})[0])

    senders = [threading.Thread(target=send, args=(0, data[:1024 * 1024])) for _ in range(2)]
    [s.start() for s in senders]
    [s.join() for s in senders]
    assert sorted(answers) == [200, 409]
    send(1024 * 1024, data[1024 * 1024:])
    status, _, body = signed_in.request(url + "/finish", data=b"", headers={"X-CSRFToken": signed_in.cookie("csrftoken")})
    assert status == 202, body
    recording = Recording.objects.get(meeting=meeting)
    assert open(recording.file.path, "rb").read() == data


class SlowStream:
    """A piece whose bytes arrive only when released: the first writer is mid-piece when the second comes."""

    def __init__(self, data: bytes):
        self.data, self.release, self.reading = data, threading.Event(), threading.Event()

    def read(self, n: int) -> bytes:
        self.reading.set()
        self.release.wait(10)
        block, self.data = self.data[:n], self.data[n:]
        return block


def test_a_piece_arriving_while_another_is_written_at_its_offset_is_refused_not_appended(alice):
    token = resumable.start(meeting_id=1, user_id=alice.pk, name="a.wav", size=8, content_type="audio/wav")
    ids = {"meeting_id": 1, "user_id": alice.pk}
    first = SlowStream(b"AAAA")
    writer = threading.Thread(target=resumable.append, args=(token, first), kwargs={"offset": 0, "length": 4, **ids})
    writer.start()
    assert first.reading.wait(10)
    with pytest.raises(resumable.UploadRefused) as refused:
        resumable.append(token, io.BytesIO(b"BBBB"), offset=0, length=4, **ids)
    assert refused.value.status == 409
    first.release.set()
    writer.join()
    assert resumable.append(token, io.BytesIO(b"CCCC"), offset=4, length=4, **ids) == 8
    assert open(upload_dir() / f"{token}.part", "rb").read() == b"AAAACCCC"


def test_abandoned_uploads_are_removed_by_the_beat_task_and_fresh_ones_kept(alice, settings):
    old = resumable.start(meeting_id=1, user_id=alice.pk, name="a.wav", size=8, content_type="audio/wav")
    fresh = resumable.start(meeting_id=1, user_id=alice.pk, name="b.wav", size=8, content_type="audio/wav")
    stale = time.time() - (settings.UPLOAD_ABANDONED_HOURS + 1) * 3600
    for suffix in (".part", ".json"):
        os.utime(upload_dir() / f"{old}{suffix}", (stale, stale))
    assert tasks.remove_abandoned_uploads.apply().get() == 2
    left = {p.name for p in upload_dir().iterdir()}
    assert {f"{fresh}.json", f"{fresh}.part"} <= left and not {f"{old}.json", f"{old}.part"} & left
    schedule = settings.CELERY_BEAT_SCHEDULE["abandoned-uploads"]
    assert schedule["task"] == tasks.remove_abandoned_uploads.name
