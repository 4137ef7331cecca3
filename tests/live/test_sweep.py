"""Meetings left live by a host who vanished are ended and transcribed again; live ones are left alone."""
import os
import time
from pathlib import Path

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from meetings import services
from meetings.models import Meeting, ReprocessJob
from transcription.live import session
from transcription.live.consumers import redis_key
from transcription.live.sweep import end_abandoned_meetings

from .conftest import Socket, follow_path


def went_live(meeting, *, audio_age_s: float) -> Meeting:
    """A meeting whose host streamed until `audio_age_s` seconds ago."""
    recording = session.live_recording(meeting)
    path = Path(settings.MEDIA_ROOT) / recording.file.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + bytes(40) + bytes(32_000))
    os.utime(path, (time.time() - audio_age_s, time.time() - audio_age_s))
    Meeting.objects.filter(pk=meeting.pk).update(status=Meeting.Status.LIVE)
    return Meeting.objects.get(pk=meeting.pk)


@pytest.fixture
def host_lock():
    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = []

    def hold(meeting):
        keys.append(redis_key("host", meeting.pk))
        client.set(keys[-1], "some-server-channel", ex=60)

    yield hold
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.django_db(transaction=True)
def test_only_meetings_without_a_host_and_without_recent_audio_are_ended(owner, host_lock):
    gone = went_live(services.meeting_create(owner=owner, title="Host closed the laptop"), audio_age_s=600)
    quiet_but_hosted = went_live(services.meeting_create(owner=owner, title="Long silence"), audio_age_s=600)
    host_lock(quiet_but_hosted)
    just_dropped = went_live(services.meeting_create(owner=owner, title="Reconnecting"), audio_age_s=20)

    assert end_abandoned_meetings(idle_s=300) == [gone.pk]

    gone.refresh_from_db()
    assert gone.status == Meeting.Status.PROCESSING and gone.ended_at
    assert ReprocessJob.objects.filter(meeting=gone).count() == 1  # its recording is transcribed again
    for meeting in (quiet_but_hosted, just_dropped):
        meeting.refresh_from_db()
        assert meeting.status == Meeting.Status.LIVE and not ReprocessJob.objects.filter(meeting=meeting).exists()
    assert end_abandoned_meetings(idle_s=300) == []  # once


@pytest.mark.django_db(transaction=True)
async def test_followers_still_watching_see_the_abandoned_meeting_end(shared_meeting, member, fast_checks):
    await sync_to_async(went_live)(shared_meeting, audio_age_s=600)
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    await follower.receive_until(lambda m: m["type"] == "status")
    assert await sync_to_async(end_abandoned_meetings)(idle_s=300) == [shared_meeting.pk]
    status = await follower.receive_until(lambda m: m["type"] == "status" and m["host"] == "ended")
    assert status["engine"]["ready"] is False
    await follower.close()
