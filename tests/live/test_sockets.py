"""Live caption sockets through the real entry point, with the real Redis channel layer."""
import numpy as np
from asgiref.sync import sync_to_async
import pytest
from django.contrib.sessions.models import Session

from meetings.models import AuditEvent, Meeting, Recording
from transcription.live.events import CLOSE_FORBIDDEN, CLOSE_SIGNED_OUT, MAX_FRAME_BYTES

from .conftest import Socket, follow_path, host_path

pytestmark = pytest.mark.django_db(transaction=True)
FRAME = np.zeros(1280, dtype=np.int16).tobytes()  # 80 ms of silence


async def test_it_refuses_an_anonymous_visitor(shared_meeting):
    sock = Socket(follow_path(shared_meeting))
    connected, _ = await sock.connect()
    assert connected
    message = await sock.receive()
    assert message["code"] == "signed_out" and "Sign in" in message["message"]
    assert await sock.closed_with() == CLOSE_SIGNED_OUT


async def test_it_refuses_an_outsider_and_audits_it(shared_meeting, outsider):
    for path in (follow_path(shared_meeting), host_path(shared_meeting)):
        sock = Socket(path, user=outsider)
        await sock.connect()
        assert (await sock.receive())["code"] == "forbidden"
        assert await sock.closed_with() == CLOSE_FORBIDDEN
    assert await AuditEvent.objects.filter(action="access_denied", actor=outsider, meeting_id=shared_meeting.pk).acount() == 2


async def test_it_refuses_a_missing_or_foreign_origin(shared_meeting, member):
    for origin in (None, b"http://evil.example"):
        connected, _ = await Socket(follow_path(shared_meeting), user=member, origin=origin).connect()
        assert not connected


async def test_a_viewer_cannot_host_or_send_audio(shared_meeting, member):
    sock = Socket(host_path(shared_meeting), user=member)
    await sock.connect()
    message = await sock.receive()
    assert message["code"] == "not_owner" and "owner" in message["message"]
    assert await sock.closed_with() == CLOSE_FORBIDDEN

    sock = Socket(follow_path(shared_meeting), user=member)
    await sock.connect()
    assert (await sock.receive())["type"] == "status"
    await sock.send_bytes(FRAME)
    assert (await sock.receive())["code"] == "not_host"
    await sock.send({"type": "ping", "t": 1})
    assert (await sock.receive())["type"] == "pong"  # the socket lives on
    await sock.close()
    assert not await Recording.objects.filter(meeting=shared_meeting).aexists()
    assert await AuditEvent.objects.filter(action="live_follow", actor=member).aexists()


async def test_malformed_and_oversized_messages_are_refused_in_words_and_the_stream_goes_on(shared_meeting, owner, settings):
    settings.ASR_MODEL_DIR = ""
    sock = Socket(host_path(shared_meeting), user=owner)
    await sock.connect()
    await sock.send({"type": "start", "delay_ms": 480})
    await sock.receive_until(lambda m: m["type"] == "started")
    for bad in (b"\x01", b"\x00" * (MAX_FRAME_BYTES + 2), b""):
        await sock.comm.send_to(bytes_data=bad) if bad else None
        if bad:
            message = await sock.receive_until(lambda m: m["type"] == "error")
            assert message["code"] == "bad_frame" and "ignored" in message["message"]
    await sock.comm.send_to(text_data="{not json")
    assert (await sock.receive_until(lambda m: m["type"] == "error"))["code"] == "malformed"
    await sock.comm.send_to(text_data="x" * 5000)
    assert (await sock.receive_until(lambda m: m["type"] == "error"))["code"] == "too_large"
    await sock.send({"type": "start", "delay_ms": 100})  # already started: ignored, not an error
    for _ in range(25):  # two seconds of audio still get through
        await sock.send_bytes(FRAME)
    await sock.send({"type": "stop"})
    await sock.receive_until(lambda m: m["type"] == "ended")
    recording = await Recording.objects.aget(meeting=shared_meeting, source="live")
    assert recording.duration_ms == 2000 and recording.sha256


async def test_without_a_model_the_host_is_told_in_words_and_audio_is_still_recorded(shared_meeting, owner, member, settings):
    settings.ASR_MODEL_DIR = ""
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    assert (await follower.receive())["host"] == "offline"
    host = Socket(host_path(shared_meeting), user=owner)
    await host.connect()
    await host.send({"type": "start", "delay_ms": 960})
    message = await host.receive_until(lambda m: m["type"] == "error")
    assert message["code"] == "engine_unavailable" and "no speech model" in message["message"].lower()
    started = await host.receive_until(lambda m: m["type"] == "started")
    assert started["captions"] is False and started["delay_ms"] == 960
    assert (await follower.receive_until(lambda m: m["type"] == "status"))["host"] == "live"
    meeting = await Meeting.objects.aget(pk=shared_meeting.pk)
    assert meeting.status == "live" and meeting.started_at and meeting.delay_ms == 960
    await host.send({"type": "pause"})
    assert (await follower.receive_until(lambda m: m["type"] == "status"))["host"] == "paused"
    await host.send({"type": "resume"})
    await host.send({"type": "stop"})
    await host.receive_until(lambda m: m["type"] == "ended")
    assert (await follower.receive_until(lambda m: m["type"] == "status" and m["host"] != "live"))["host"] == "ended"
    meeting = await Meeting.objects.aget(pk=shared_meeting.pk)
    assert meeting.status == "processing" and meeting.ended_at
    assert await AuditEvent.objects.filter(action="live_host", actor=owner, meeting_id=meeting.pk).aexists()


async def test_bad_delays_are_refused(shared_meeting, owner):
    host = Socket(host_path(shared_meeting), user=owner)
    await host.connect()
    await host.send({"type": "start", "delay_ms": 100})
    assert (await host.receive_until(lambda m: m["type"] == "error"))["code"] == "bad_delay"
    await host.close()


async def test_signing_out_closes_the_socket(shared_meeting, owner, member, fast_checks):
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    await follower.receive()
    await Session.objects.all().adelete()  # what signing out does to the session
    await follower.send({"type": "ping", "t": 1})
    assert (await follower.receive_until(lambda m: m["type"] == "error"))["code"] == "signed_out"
    assert await follower.closed_with() == CLOSE_SIGNED_OUT


async def test_losing_access_closes_a_follower_within_a_status_beat(shared_meeting, owner, member, fast_checks, settings):
    settings.ASR_MODEL_DIR = ""
    follower = Socket(follow_path(shared_meeting), user=member)
    await follower.connect()
    await follower.receive()
    host = Socket(host_path(shared_meeting), user=owner)
    await host.connect()
    await host.send({"type": "start"})
    await shared_meeting.sharings.all().adelete()
    # No message from the follower: the host's status heartbeat is what makes it look again.
    assert (await follower.receive_until(lambda m: m["type"] == "error"))["code"] == "forbidden"
    assert await follower.closed_with() == CLOSE_FORBIDDEN
    await host.close()


async def test_the_hosts_own_caption_pane_can_ask_for_finals_it_missed(shared_meeting, owner):
    from meetings.services import segment_append
    from meetings.models import Segment

    for i in range(3):
        await sync_to_async(segment_append)(meeting=shared_meeting, text=f"line {i + 1}", start_ms=i * 1000, end_ms=i * 1000 + 900,
                                            origin=Segment.Origin.LIVE)
    sock = Socket(host_path(shared_meeting), user=owner)
    await sock.connect()
    await sock.send({"type": "hello", "last_seq": 1})
    replay = await sock.receive_until(lambda m: m["type"] == "replay")
    assert [(c["seq"], c["text"]) for c in replay["captions"]] == [(2, "line 2"), (3, "line 3")]
    await sock.close()
