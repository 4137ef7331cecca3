"""Live caption sockets end with the session (real Daphne, the real live channel layer).

Before: a follower still received captions for about 5 s after signing out, and a follower that sent
nothing stayed connected after sign-out indefinitely.
"""
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session

from meetings.models import Sharing
from meetings.services import meeting_create
from transcription.live.events import CLOSE_SIGNED_OUT, group_name

from .conftest import WebSocket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def meeting(transactional_db):
    owner = User.objects.create_user("alice", password="alice-password-1")
    follower = User.objects.create_user("bob", password="bob-password-1")
    meeting = meeting_create(owner=owner, title="Ward round")
    Sharing.objects.create(meeting=meeting, user=follower, role=Sharing.Role.VIEW)
    return meeting


def publish_caption(meeting, seq: int) -> None:
    """What a host's socket publishes for each finished line."""
    layer = get_channel_layer(settings.LIVE_CHANNEL_LAYER)
    async_to_sync(layer.group_send)(group_name(meeting.pk), {
        "type": "caption", "final": True, "seq": seq, "text": f"line {seq}", "start_ms": seq * 1000,
        "end_ms": seq * 1000 + 900, "sent_at": time.time()})


def follow(site, visitor, meeting) -> tuple:
    bob = visitor()
    bob.sign_in("bob", "bob-password-1")
    socket = WebSocket(site, f"/ws/meetings/{meeting.pk}/live/captions", cookie=bob.cookie_header())
    assert socket.status == 101
    assert socket.receive(timeout=10)["type"] == "status"
    return bob, socket


def until_closed(socket, timeout: float) -> tuple[list[dict], float | None]:
    """Messages until the close frame, and seconds until it came (None if it did not)."""
    started, messages = time.monotonic(), []
    while (left := timeout - (time.monotonic() - started)) > 0:
        try:
            message = socket.receive(timeout=left)
        except (TimeoutError, ConnectionError):
            break
        messages.append(message)
        if "closed" in message:
            return messages, time.monotonic() - started
    return messages, None


def test_signing_out_closes_the_follower_within_a_second_and_no_caption_follows(site, visitor, meeting):
    bob, socket = follow(site, visitor, meeting)
    publish_caption(meeting, 1)
    assert socket.receive(timeout=10)["text"] == "line 1"  # captions do arrive while signed in

    status, _, _ = bob.post("/accounts/logout/", {})
    signed_out = time.monotonic()
    assert status == 302
    for seq in range(2, 12):  # the host goes on talking
        publish_caption(meeting, seq)
    messages, took = until_closed(socket, timeout=5)
    assert took is not None, f"still open after sign-out: {messages}"
    assert time.monotonic() - signed_out < 1.5 and took < 1.0 + 0.5  # 1 s, plus this test's own publishing
    assert [m.get("type") for m in messages if "closed" not in m] == ["error"]  # no caption after sign-out
    assert messages[0]["code"] == "signed_out" and "Sign in again" in messages[0]["message"]
    assert messages[-1] == {"closed": CLOSE_SIGNED_OUT}


def test_an_idle_follower_is_closed_when_its_session_ends_without_a_sign_out(site, visitor, meeting):
    _, socket = follow(site, visitor, meeting)
    Session.objects.all().delete()  # expired or removed on the server; the page sends nothing
    messages, took = until_closed(socket, timeout=8)
    assert took is not None, "an idle socket outlived its session"
    assert messages[-1] == {"closed": CLOSE_SIGNED_OUT}


def test_deactivating_an_account_closes_its_sockets_at_once(site, visitor, meeting):
    _, socket = follow(site, visitor, meeting)
    bob = User.objects.get(username="bob")
    bob.is_active = False
    bob.save()
    messages, took = until_closed(socket, timeout=5)
    assert took is not None and took < 1.5
    assert messages[-1] == {"closed": CLOSE_SIGNED_OUT}
