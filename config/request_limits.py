"""Request bodies are bounded per route, and refused before anything is stored.

Django's ASGI handler reads the whole body into a temporary file before any middleware or view runs,
so a view's own size check comes too late. `RequestLimits` sits in front of Django: it answers 413
when the declared `Content-Length` or the bytes actually streamed pass the route's limit, and on the
upload routes it decides sign-in and the meeting's edit permission before the first byte of a piece
is read. Daphne (Twisted) buffers a body before it calls any ASGI application at all, so
`config.daphne_guard` applies the same policy at the socket; behind nginx, per-location
`client_max_body_size` refuses first (deploy/nginx/).

Limits: recording pieces on the upload routes (settings.UPLOAD_PIECE_MAX_BYTES plus framing);
every other request settings.REQUEST_BODY_MAX_BYTES.
"""
import json
import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from importlib import import_module
from types import SimpleNamespace

from channels.db import database_sync_to_async
from django.conf import settings

# The resumable piece route and the single-request form upload; both take a recording's bytes.
UPLOAD_ROUTE = re.compile(r"^/meetings/(?P<meeting_id>\d+)/recordings/(?:upload|uploads/[0-9a-f]{32})$")
FRAMING_BYTES = 64 * 1024  # multipart boundaries and headers around a piece sent as a form


@dataclass(frozen=True)
class Route:
    limit: int  # bytes of body accepted
    meeting_id: int | None = None  # set on upload routes: edit permission is checked before reading


def route_for(method: str, path: str) -> Route:
    match = UPLOAD_ROUTE.match(path)
    if match and method.upper() == "POST":
        return Route(settings.UPLOAD_PIECE_MAX_BYTES + FRAMING_BYTES, int(match["meeting_id"]))
    return Route(settings.REQUEST_BODY_MAX_BYTES)


def too_large_message(route: Route) -> str:
    if route.meeting_id is not None:
        return (f"A piece of a recording may hold at most {settings.UPLOAD_PIECE_MAX_BYTES // (1024 * 1024)} MB. "
                "Upload recordings from the meeting page, which sends them in pieces.")
    return "This request is larger than the site accepts. Nothing was saved."


def declared_length(headers) -> int | None:
    """Content-Length from ASGI headers (a list of byte pairs); None when absent or unreadable."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def upload_refusal(cookie_header: str, meeting_id: int, *, client: str | None = None, path: str = "") -> tuple[int, str] | None:
    """None when the session's user may edit the meeting, else (status, message). Synchronous (database)."""
    # Imported here: config/ sits below the apps and imports none of them when it is loaded.
    from django.contrib.auth import get_user

    from meetings.access import EDIT, MeetingAccessDenied, get_meeting_for_user
    from meetings.audit import audit
    from meetings.models import AuditEvent

    cookies = SimpleCookie()
    try:
        cookies.load(cookie_header or "")
    except Exception:  # a malformed Cookie header is no session
        cookies = SimpleCookie()
    morsel = cookies.get(settings.SESSION_COOKIE_NAME)
    session = import_module(settings.SESSION_ENGINE).SessionStore(morsel.value if morsel else None)
    user = get_user(SimpleNamespace(session=session))  # checks expiry, deactivation and the password hash
    if not user.is_authenticated:
        return 403, "You are signed out. Sign in again, then resume the upload from the meeting page."
    try:
        get_meeting_for_user(user, meeting_id, EDIT)
    except MeetingAccessDenied:
        request = SimpleNamespace(META={"REMOTE_ADDR": client, "HTTP_USER_AGENT": ""}, user=user)
        audit(request, AuditEvent.Action.ACCESS_DENIED, meeting_id=meeting_id, detail={"path": path, "needed": EDIT})
        return 404, "No such meeting, or you do not have access to it."
    return None


async def send_refusal(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """ASGI middleware around Django's HTTP application (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = route_for(scope["method"], scope["path"])
        length = declared_length(scope.get("headers") or [])
        if length is not None and length > route.limit:
            return await send_refusal(send, 413, too_large_message(route))
        if route.meeting_id is not None:
            cookie = b"; ".join(v for k, v in scope.get("headers") or [] if k.lower() == b"cookie").decode("latin-1")
            client = (scope.get("client") or [None])[0]
            refusal = await database_sync_to_async(upload_refusal)(cookie, route.meeting_id, client=client, path=scope["path"])
            if refusal:
                return await send_refusal(send, *refusal)
        counted = _CountedBody(receive, route.limit)
        started = []

        async def tracked_send(message):
            if message["type"] == "http.response.start":
                started.append(True)
            await send(message)

        await self.app(scope, counted.receive, tracked_send)
        if counted.overflowed and not started:
            await send_refusal(send, 413, too_large_message(route))


class _CountedBody:
    """Passes body messages through until `limit` bytes; past it, tells Django the client went away."""

    def __init__(self, receive, limit: int):
        self._receive, self.limit = receive, limit
        self.received, self.overflowed = 0, False

    async def receive(self):
        if self.overflowed:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.overflowed = True  # Django stops reading (RequestAborted) and answers nothing
                return {"type": "http.disconnect"}
        return message
