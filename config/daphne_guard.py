"""The body limits of config.request_limits, applied inside Daphne before Twisted stores a byte.

Daphne hands a request to the ASGI application only once Twisted has received the whole body, which
Twisted keeps in an anonymous temporary file from 100 kB up: a 300 MB anonymous POST filled 300 MB
of disk before any Python of ours ran. This guard hooks the three points where Twisted sees a request
(`gotLength` after the headers, `handleContentChunk` per piece of body, `requestReceived` at the end):

- a declared or counted body past the route's limit gets a 413 and the connection is closed;
- bodies are kept in memory up to 1 MiB, so refused or small requests never touch the disk;
- on the upload routes the socket is paused after the headers while a thread checks the session and
  the meeting's edit permission; only then is the body read (and `100 Continue` sent).

Installed by config/asgi.py; a no-op under any other server (which streams bodies to
`RequestLimits` instead).
"""
import json
import logging
import tempfile

from django.db import close_old_connections

from .request_limits import Route, route_for, too_large_message, upload_refusal

log = logging.getLogger(__name__)
MEMORY_BYTES = 1 << 20
LINGER_S = 2.0  # keep reading (and dropping) a refused body this long, so the client can read the 413


def _response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class _Guard:
    """Per-request state, kept on the request as `_scribe_guard`."""

    def __init__(self, route: Route):
        self.route, self.received = route, 0
        self.refused = False
        self.pending = False  # waiting for the permission check
        self.held: list[bytes] = []  # body bytes that arrived with the headers while pending
        self.finished_args = None  # requestReceived's arguments, if the body completed while pending
        self.wants_continue = False


def _refuse(request, status: int, reason: str, message: str) -> None:
    guard = request._scribe_guard
    if guard.refused:
        return
    guard.refused, guard.held = True, []
    transport = request.channel.transport
    transport.write(_response(status, reason, message))
    transport.resumeProducing()  # drain what the client is still sending, then close
    from twisted.internet import reactor

    reactor.callLater(LINGER_S, transport.loseConnection)


def _got_length(original):
    def gotLength(self, length):
        channel = self.channel
        method = getattr(channel, "_command", b"GET").decode("latin-1")
        path = getattr(channel, "_path", b"/").split(b"?", 1)[0].decode("latin-1")
        guard = self._scribe_guard = _Guard(route_for(method, path))
        self.content = tempfile.SpooledTemporaryFile(max_size=MEMORY_BYTES)
        if length is not None and length > guard.route.limit:
            self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" for a body we refuse
            return _refuse(self, 413, "Payload Too Large", too_large_message(guard.route))
        if guard.route.meeting_id is not None:
            guard.wants_continue = self.requestHeaders.hasHeader(b"Expect")
            self.requestHeaders.removeHeader(b"Expect")
            _check_permission(self, guard, path)

    return gotLength


def _check_permission(request, guard: _Guard, path: str) -> None:
    from twisted.internet import threads

    guard.pending = True
    request.channel.transport.pauseProducing()
    cookie = b"; ".join(request.requestHeaders.getRawHeaders(b"cookie") or []).decode("latin-1")
    client = getattr(request.getClientAddress(), "host", None)

    def check():
        close_old_connections()
        try:
            return upload_refusal(cookie, guard.route.meeting_id, client=client, path=path)
        finally:
            close_old_connections()

    def decided(refusal):
        guard.pending = False
        if refusal:
            status, message = refusal
            return _refuse(request, status, "Forbidden" if status == 403 else "Not Found", message)
        for block in guard.held:
            _store(request, guard, block)
        guard.held = []
        if guard.wants_continue and not guard.refused:
            request.channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.channel.transport.resumeProducing()
        if guard.finished_args and not guard.refused:
            request._scribe_original_received(*guard.finished_args)

    def failed(failure):
        log.error("upload permission check failed: %s", failure.getErrorMessage())
        decided((503, "The site could not check your access just now. Try again in a minute."))

    threads.deferToThread(check).addCallbacks(decided, failed)


def _store(request, guard: _Guard, data: bytes) -> None:
    guard.received += len(data)
    if guard.received > guard.route.limit:
        return _refuse(request, 413, "Payload Too Large", too_large_message(guard.route))
    request.content.write(data)


def _handle_content_chunk(original):
    def handleContentChunk(self, data):
        guard = getattr(self, "_scribe_guard", None)
        if guard is None:
            return original(self, data)
        if guard.refused:
            return None  # dropped: never stored
        if guard.pending:
            guard.held.append(data)  # at most what arrived with the headers: the socket is paused
            return None
        return _store(self, guard, data)

    return handleContentChunk


def _request_received(original):
    def requestReceived(self, command, path, version):
        guard = getattr(self, "_scribe_guard", None)
        if guard is not None and guard.refused:
            return None
        if guard is not None and guard.pending:
            guard.finished_args = (command, path, version)
            return None
        return original(self, command, path, version)

    return requestReceived


def install() -> bool:
    """Hook Daphne's request class; False when Daphne is not installed."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:
        return False
    if getattr(WebRequest, "_scribe_guarded", False):
        return True
    WebRequest._scribe_original_received = WebRequest.requestReceived
    WebRequest.gotLength = _got_length(WebRequest.gotLength)
    WebRequest.handleContentChunk = _handle_content_chunk(WebRequest.handleContentChunk)
    WebRequest.requestReceived = _request_received(WebRequest.requestReceived)
    WebRequest._scribe_guarded = True
    return True
