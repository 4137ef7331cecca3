"""One real Daphne for the security tests, and clients that speak to it as an attacker's tools would.

The server is started once per session (with small limits so that each case is quick to reproduce);
each test makes its own users and meetings in a transactional database the server reads.
"""
import http.cookiejar
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.raw_websocket import RawWebSocket
from tests.servers import daphne_server

FAILURE_LIMIT = 5  # sign-in failures before a lockout, in the server started here


@pytest.fixture(scope="session")
def server_tmp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("security-server-tmp")  # the server's TMPDIR: whatever it spools lands here
    return tmp


@pytest.fixture(scope="session")
def model_root(tmp_path_factory):
    return tmp_path_factory.mktemp("model-root")


@pytest.fixture(scope="session")
def site(django_db_setup, django_db_blocker, tmp_path_factory, server_tmp, model_root):
    logs = tmp_path_factory.mktemp("security-logs")
    env = {
        "TMPDIR": server_tmp, "SCRIBE_ASR_MODEL_DIR": "", "SCRIBE_AXES_FAILURE_LIMIT": FAILURE_LIMIT,
        "SCRIBE_MODEL_ROOTS": model_root,
        "SCRIBE_UPLOAD_PIECE_MB": 1, "SCRIBE_REQUEST_BODY_MAX_KB": 256,
        "SCRIBE_RECORDING_MAX_HOURS": 1, "SCRIBE_REPROCESS_MAX_QUEUED_PER_USER": 2,
    }
    with daphne_server(logs, **env) as url:
        yield url


class Visitor:
    """Cookies, CSRF and no automatic redirects, over plain HTTP to the test server."""

    def __init__(self, base: str):
        self.base = base
        self.cookies = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect)

    def request(self, path: str, *, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
        """(status, headers, body text) for a path on the site."""
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Referer": self.base + "/", **(headers or {})})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.headers, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read().decode("utf-8", "replace")

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)

    def post(self, path: str, fields: dict, *, headers: dict | None = None):
        if not self.cookie("csrftoken"):
            self.request("/accounts/login/")
        body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": self.cookie("csrftoken")}, doseq=True).encode()
        return self.request(path, data=body, headers={"Content-Type": "application/x-www-form-urlencoded",
                                                     "X-CSRFToken": self.cookie("csrftoken"), **(headers or {})})

    def sign_in(self, username: str, password: str, path: str = "/accounts/login/"):
        self.request(path)
        return self.post(path, {"username": username, "password": password})


@pytest.fixture
def visitor(site):
    return lambda: Visitor(site)


def upload(person: Visitor, meeting_id: int, data: bytes, *, name: str = "recording.flac", piece: int = 1024 * 1024):
    """Send a recording the way the meeting page does (start, pieces, finish); the finish answer."""
    status, _, body = person.post(f"/meetings/{meeting_id}/recordings/uploads", {"size": len(data), "name": name})
    assert status == 201, body
    token = json.loads(body)["token"]
    url = f"/meetings/{meeting_id}/recordings/uploads/{token}"
    for offset in range(0, len(data), piece):
        status, _, body = person.request(url, data=data[offset:offset + piece], headers={
            "X-Upload-Offset": str(offset), "X-CSRFToken": person.cookie("csrftoken"), "Content-Type": "application/octet-stream"})
        assert status == 200, body
    status, _, body = person.request(url + "/finish", data=b"", headers={"X-CSRFToken": person.cookie("csrftoken")})
    return status, json.loads(body)


def raw_request(base: str, head: str, body_chunks=(), *, timeout: float = 20) -> tuple[int, bytes, int]:
    """Send a request line and headers, then body chunks until the server answers or the body ends.

    Returns (status, response bytes, body bytes sent), as a client streaming a large body sees it."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sent = 0
    try:
        sock.sendall(head.encode())
        for chunk in body_chunks:
            sock.settimeout(0.0)
            try:
                early = sock.recv(65536)  # the server answered before the body ended
            except BlockingIOError:
                early = b""
            sock.settimeout(timeout)
            if early:
                return _status(early), early + _rest(sock), sent
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        data = _rest(sock)
        return _status(data), data, sent
    finally:
        sock.close()


def _rest(sock) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk
        if b"\r\n\r\n" in data and _complete(data):
            return data


def _complete(data: bytes) -> bool:
    data = re.sub(rb"^HTTP/1\.1 100 Continue\r\n\r\n", b"", data)
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))


def _status(data: bytes) -> int:
    data = re.sub(rb"^HTTP/1\.1 100 Continue\r\n\r\n", b"", data)
    match = re.match(rb"HTTP/1\.[01] (\d+)", data)
    return int(match.group(1)) if match else 0


class WebSocket(RawWebSocket):
    """A live socket's JSON messages, and notice of when the server closes it."""

    def __init__(self, base: str, path: str, *, cookie: str):
        host, port = base.removeprefix("http://").split(":")
        super().__init__(socket.create_connection((host, int(port)), timeout=15), host=f"{host}:{port}", path=path,
                         origin=base, cookie=cookie)

    def receive(self, timeout: float) -> dict:
        """The next JSON message; {"closed": code} when the server closes the socket."""
        self.sock.settimeout(timeout)
        opcode, payload = self.frame()
        if opcode == 0x8:
            return {"closed": int.from_bytes(payload[:2], "big")}
        return json.loads(payload)
