import json

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from meetings import services
from meetings.models import Sharing

ORIGIN = b"http://127.0.0.1"


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


class Socket:
    """A WebSocket through the real entry point (origin check, session auth, routing)."""

    def __init__(self, path: str, *, user=None, cookie: str | None = None, origin: bytes | None = ORIGIN):
        self.path, self.user, self.cookie, self.origin = path, user, cookie, origin

    async def connect(self):
        from asgiref.sync import sync_to_async

        from config.websocket import websocket_application

        headers = []
        if self.origin is not None:
            headers.append((b"origin", self.origin))
        if self.user is not None:
            self.cookie = await sync_to_async(session_cookie)(self.user)
        if self.cookie:
            headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={self.cookie}".encode()))
        self.comm = WebsocketCommunicator(websocket_application, self.path, headers=headers)
        return await self.comm.connect(timeout=10)

    async def send(self, payload: dict):
        await self.comm.send_to(text_data=json.dumps(payload))

    async def send_bytes(self, data: bytes):
        await self.comm.send_to(bytes_data=data)

    async def receive(self, timeout: float = 10) -> dict:
        return json.loads(await self.comm.receive_from(timeout=timeout))

    async def receive_until(self, predicate, timeout: float = 20) -> dict:
        """Skip messages (status, deltas) until one matches."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError("the expected message did not arrive")
            message = await self.receive(timeout=left)
            if predicate(message):
                return message

    async def closed_with(self, timeout: float = 10) -> int:
        """Read until the server closes; return its close code."""
        while True:
            output = await self.comm.receive_output(timeout=timeout)
            if output["type"] == "websocket.close":
                return output.get("code")

    async def close(self):
        await self.comm.disconnect()


def host_path(meeting) -> str:
    return f"/ws/meetings/{meeting.pk}/live/host"


def follow_path(meeting) -> str:
    return f"/ws/meetings/{meeting.pk}/live/captions"


@pytest.fixture
def shared_meeting(owner, member):
    meeting = services.meeting_create(owner=owner, title="Ward round", language="en")
    services.meeting_share(meeting=meeting, by=owner, user=member, role=Sharing.Role.VIEW)
    return meeting


@pytest.fixture
def fast_checks(settings):
    """Re-check the session on every message and send status often, so tests need not wait."""
    settings.LIVE_RECHECK_SECONDS = 0
    settings.LIVE_STATUS_SECONDS = 1
    return settings
