"""Oversized and unauthorised request bodies are refused before they are stored (real Daphne).

Before: a 300 MiB anonymous POST to /accounts/login/ grew disk use by 299 MiB before its 403, because
the server buffers a whole body before any check runs.
"""
import os
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from meetings.models import AuditEvent, Sharing
from meetings.services import meeting_create

from .conftest import raw_request

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024 * 1024


def server_pid(base: str) -> int:
    port = base.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"daphne" in b" ".join(args) and port.encode() in args:
                return int(entry.name)
    raise AssertionError("the test server's process was not found")


def spooled_bytes(pid: int) -> int:
    """Bytes in regular files the server holds open, deleted temporary files included."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
            stat = os.stat(fd)
        except OSError:
            continue
        if target.startswith("/") and not target.endswith(".log") and os.path.isfile(fd) and stat.st_size:
            total += stat.st_size
    return total


def chunked(total: int, size: int = 256 * 1024):
    block = b"x" * size
    for _ in range(total // size):
        yield f"{size:x}\r\n".encode() + block + b"\r\n"


def test_a_huge_anonymous_post_is_refused_from_its_declared_length_before_any_byte_is_read(site):
    head = f"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {300 * MiB}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
    status, response, sent = raw_request(site, head)
    assert status == 413, response[:300]
    assert b"larger than the site accepts" in response


def test_a_streamed_anonymous_post_is_cut_off_without_reaching_the_disk(site):
    pid = server_pid(site)
    before = spooled_bytes(pid)
    head = "POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    peak = [0]

    def body():
        for n, chunk in enumerate(chunked(300 * MiB)):
            if n % 8 == 0:
                peak[0] = max(peak[0], spooled_bytes(pid) - before)
            yield chunk

    status, response, sent = raw_request(site, head, body())
    peak[0] = max(peak[0], spooled_bytes(pid) - before)
    assert status == 413, response[:300]
    assert sent < 64 * MiB  # refused early, not after the 300 MiB
    assert peak[0] < MiB, f"the server stored {peak[0]} bytes of a refused body"


@pytest.fixture
def meeting(transactional_db):
    owner = User.objects.create_user("alice", password="alice-password-1")
    viewer = User.objects.create_user("bob", password="bob-password-1")
    User.objects.create_user("carol", password="carol-password-1")
    meeting = meeting_create(owner=owner, title="Ward round")
    Sharing.objects.create(meeting=meeting, user=viewer, role=Sharing.Role.VIEW)
    return meeting


def piece_head(meeting, cookie: str, length: int, *, csrf: str = "", token: str = "0" * 32) -> str:
    return (f"POST /meetings/{meeting.pk}/recordings/uploads/{token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {length}\r\nExpect: 100-continue\r\nCookie: {cookie}\r\nX-CSRFToken: {csrf}\r\n"
            "X-Upload-Offset: 0\r\nReferer: http://127.0.0.1/\r\n\r\n")


def test_an_upload_piece_is_refused_to_a_signed_out_client_before_its_body_is_read(site, meeting):
    status, response, _ = raw_request(site, piece_head(meeting, "", 512 * 1024))
    assert status == 403, response[:300]
    assert b"100 Continue" not in response and b"signed out" in response


@pytest.mark.parametrize("who,expected", [("bob", 404), ("carol", 404)])
def test_an_upload_piece_is_refused_without_edit_permission_before_its_body_is_read(site, meeting, visitor, who, expected):
    person = visitor()
    person.sign_in(who, f"{who}-password-1")
    status, response, _ = raw_request(site, piece_head(meeting, person.cookie_header(), 512 * 1024, csrf=person.cookie("csrftoken")))
    assert status == expected, response[:300]
    assert b"100 Continue" not in response
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ACCESS_DENIED, meeting_id=meeting.pk, actor_username=who).exists()


def test_the_owner_may_send_a_piece_but_not_one_larger_than_the_piece_size(site, meeting, visitor):
    alice = visitor()
    alice.sign_in("alice", "alice-password-1")
    status, _, body = alice.post(f"/meetings/{meeting.pk}/recordings/uploads", {"size": 3 * MiB, "name": "round.wav"})
    assert status == 201, body
    token = __import__("json").loads(body)["token"]
    head = piece_head(meeting, alice.cookie_header(), 2 * MiB, csrf=alice.cookie("csrftoken"), token=token)
    status, response, _ = raw_request(site, head)
    assert status == 413 and b"at most 1 MB" in response
    head = piece_head(meeting, alice.cookie_header(), 512 * 1024, csrf=alice.cookie("csrftoken"), token=token)
    status, response, _ = raw_request(site, head, [b"\0" * (512 * 1024)])
    assert status == 200 and b'"received": 524288' in response, response[-300:]
