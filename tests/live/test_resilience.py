"""A host whose connection drops, reloads or whose server restarts: every frame once, the session kept
for the grace, and followers told the truth. Sockets through the real entry point, no engine."""
import asyncio

import numpy as np
import pytest

from meetings.models import Meeting, Recording
from tests.speech import read_wav
from transcription.live.recorder import HEADER_BYTES, WavAppender

from .conftest import Socket, follow_path, host_path

pytestmark = pytest.mark.django_db(transaction=True)
CAPTURE = "capture-0123456789abcdef"


def frame(seq: int) -> bytes:
    """80 ms whose samples all equal its seq: the recording shows which frames it holds, in which order."""
    return np.full(1280, seq, dtype="<i2").tobytes()


def frames_in(path) -> list[int]:
    pcm, _ = read_wav(path)
    return [int(v) for v in pcm.reshape(-1, 1280)[:, 0]]


@pytest.fixture
def no_engine(settings, fast_checks):
    settings.ASR_MODEL_DIR = ""
    settings.LIVE_HOST_GRACE_SECONDS = 5
    return settings


async def start_host(owner, meeting, capture=CAPTURE) -> tuple[Socket, dict]:
    host = Socket(host_path(meeting), user=owner)
    await host.connect()
    await host.send({"type": "start", "delay_ms": 480, "capture": capture})
    return host, await host.receive_until(lambda m: m["type"] == "started")


async def test_resent_frames_are_appended_once_and_the_session_survives_a_drop(shared_meeting, owner, member, no_engine):
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    host, started = await start_host(owner, shared_meeting)
    assert started["acked"] == 0
    for seq in range(1, 26):
        await host.send_bytes(frame(seq))
    await host.receive_until(lambda m: m["type"] == "ack" and m["seq"] == 25)
    await follower.receive_until(lambda m: m["type"] == "status" and m["host"] == "live")
    await host.close()  # the network drops; the page keeps frames 20..25 it was not sure of, and captures on
    status = await follower.receive_until(lambda m: m["type"] == "status" and m["host"] != "live")
    assert status["host"] == "reconnecting" and status["audio"] is False

    host, started = await start_host(owner, shared_meeting)
    assert started["acked"] == 25  # what the server has; the page resends from its oldest kept frame
    await host.send({"type": "frames", "seq": 20, "late": 10})
    for seq in range(20, 41):
        await host.send_bytes(frame(seq))
    await host.send({"type": "stop"})
    await host.receive_until(lambda m: m["type"] == "ended")
    recording = await Recording.objects.aget(meeting=shared_meeting, source="live")
    assert frames_in(recording.file.path) == list(range(1, 41))
    assert (await Meeting.objects.aget(pk=shared_meeting.pk)).status == Meeting.Status.PROCESSING


async def test_a_host_back_after_its_server_was_killed_does_not_wait_for_the_dead_servers_socket(shared_meeting, owner, no_engine):
    import time

    import redis.asyncio as aioredis
    from django.conf import settings

    from transcription.live.consumers import redis_key

    # The killed server's socket still holds the lock and its alive mark has two seconds to run, but
    # its channel died with the server's Redis connection: nothing subscribes to it any more.
    dead = "scribe-live-specific.0123456789abcdef0123456789abcdef"
    client = aioredis.from_url(settings.REDIS_URL)
    await client.set(redis_key("host", shared_meeting.pk), dead, ex=10)
    await client.set(redis_key("host-alive", shared_meeting.pk), dead, px=2000)
    await client.aclose()
    began = time.monotonic()
    host, started = await start_host(owner, shared_meeting)
    assert started["type"] == "started" and time.monotonic() - began < 1.5, time.monotonic() - began
    await host.send({"type": "stop"})
    await host.receive_until(lambda m: m["type"] == "ended")


async def test_a_reloaded_page_continues_the_same_recording_with_a_new_capture(shared_meeting, owner, no_engine):
    host, _ = await start_host(owner, shared_meeting)
    for seq in range(1, 11):
        await host.send_bytes(frame(seq))
    await host.receive_until(lambda m: m["type"] == "ack" and m["seq"] == 10)
    await host.close()
    host, started = await start_host(owner, shared_meeting, capture="reloaded-page-capture-01")
    assert started["acked"] == 0 and started["offset_ms"] == 800  # its captions' times follow the first page's audio
    for seq in range(1, 6):
        await host.send_bytes(frame(seq))
    await host.send({"type": "stop"})
    await host.receive_until(lambda m: m["type"] == "ended")
    recording = await Recording.objects.aget(meeting=shared_meeting, source="live")
    assert frames_in(recording.file.path) == [*range(1, 11), *range(1, 6)]


async def test_a_host_gone_past_the_grace_ends_the_meeting_and_followers_are_told(shared_meeting, owner, member, no_engine):
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    host, _ = await start_host(owner, shared_meeting)
    await host.send_bytes(frame(1))
    await host.close()
    await follower.receive_until(lambda m: m["type"] == "status" and m["host"] == "reconnecting")
    assert (await Meeting.objects.aget(pk=shared_meeting.pk)).status == Meeting.Status.LIVE
    await follower.receive_until(lambda m: m["type"] == "status" and m["host"] == "ended", timeout=30)
    meeting = await Meeting.objects.aget(pk=shared_meeting.pk)
    assert meeting.status == Meeting.Status.PROCESSING and meeting.ended_at


async def test_a_host_back_within_the_grace_keeps_the_meeting_live(shared_meeting, owner, no_engine):
    host, _ = await start_host(owner, shared_meeting)
    await host.close()
    host, _ = await start_host(owner, shared_meeting)
    await asyncio.sleep(7)  # past the first grace: that timer must not end the resumed session
    assert (await Meeting.objects.aget(pk=shared_meeting.pk)).status == Meeting.Status.LIVE
    await host.send({"type": "stop"})
    await host.receive_until(lambda m: m["type"] == "ended")


async def test_followers_hear_within_two_seconds_that_audio_stopped_arriving(shared_meeting, owner, member, no_engine):
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    host, _ = await start_host(owner, shared_meeting)
    for seq in range(1, 4):
        await host.send_bytes(frame(seq))
    await follower.receive_until(lambda m: m["type"] == "status" and m.get("audio") is True)
    loop = asyncio.get_running_loop()
    stopped = loop.time()  # the socket stays open but no audio comes: a half-open network
    await follower.receive_until(lambda m: m["type"] == "status" and m.get("audio") is False)
    assert loop.time() - stopped < 2.5  # 2 s plus a loaded machine's slack
    await host.send_bytes(frame(4))
    await follower.receive_until(lambda m: m["type"] == "status" and m.get("audio") is True, timeout=3)
    await host.close()


async def test_a_page_that_pressed_stop_is_not_started_again_after_the_meeting_ended(shared_meeting, owner, no_engine):
    host, _ = await start_host(owner, shared_meeting)
    await host.send({"type": "stop"})
    await host.receive_until(lambda m: m["type"] == "ended")
    again = Socket(host_path(shared_meeting), user=owner)
    await again.connect()
    await again.send({"type": "start", "capture": CAPTURE, "ending": True})
    await again.receive_until(lambda m: m["type"] == "ended")
    assert (await Meeting.objects.aget(pk=shared_meeting.pk)).status == Meeting.Status.PROCESSING


def test_the_sequence_mark_survives_a_restart_and_a_crash_between_mark_and_samples(tmp_path):
    path = tmp_path / "live.wav"
    wav = WavAppender(path)
    assert [wav.append(frame(s), CAPTURE, s) for s in (1, 2, 3, 2)] == [True, True, True, False]
    wav.close()
    wav = WavAppender(path)  # a restarted server
    assert wav.acked(CAPTURE) == 3 and wav.acked("another-capture-id") == 0
    assert not wav.append(frame(3), CAPTURE, 3)
    wav.append(frame(4), CAPTURE, 4)
    wav._fh.truncate(HEADER_BYTES + 3 * 2560 + 100)  # killed after the mark, part-way through frame 4's samples
    wav._fh.close()
    wav = WavAppender(path)
    assert wav.acked(CAPTURE) == 3 and wav.data_bytes == 3 * 2560  # frame 4 counts as never appended ...
    assert wav.append(frame(4), CAPTURE, 4)  # ... so its resend is taken
    wav.close()
    assert frames_in(path) == [1, 2, 3, 4]


async def test_a_host_back_after_the_grace_resumes_the_session_and_its_transcription_waits(shared_meeting, owner, member, no_engine):
    """A network drop longer than the grace: the meeting ended and was queued for transcription; the page,
    still open, comes back with the audio it kept and the same session goes on, the queued job cancelled."""
    from meetings.models import ReprocessJob

    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    host, _ = await start_host(owner, shared_meeting)
    await host.send_bytes(frame(1))
    await host.receive_until(lambda m: m["type"] == "ack" and m["seq"] == 1)
    await host.close()
    await follower.receive_until(lambda m: m["type"] == "status" and m["host"] == "ended", timeout=30)
    job = await ReprocessJob.objects.aget(meeting=shared_meeting)

    host, started = await start_host(owner, shared_meeting)
    assert started["acked"] == 1
    await host.send({"type": "frames", "seq": 2, "late": 2})
    for seq in (2, 3):
        await host.send_bytes(frame(seq))
    await host.receive_until(lambda m: m["type"] == "ack" and m["seq"] == 3)
    assert (await Meeting.objects.aget(pk=shared_meeting.pk)).status == Meeting.Status.LIVE
    await job.arefresh_from_db()
    assert job.cancel_requested and job.is_finished
    await host.send({"type": "stop"})
    await host.receive_until(lambda m: m["type"] == "ended")
    recording = await Recording.objects.aget(meeting=shared_meeting, source="live")
    assert frames_in(recording.file.path) == [1, 2, 3]
    assert await ReprocessJob.objects.filter(meeting=shared_meeting).exclude(stage__in=ReprocessJob.FINISHED).acount() == 1
