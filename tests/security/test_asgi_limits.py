"""The ASGI layer in front of Django, for servers that stream bodies to the application (no Daphne guard)."""
import pytest

from config.request_limits import RequestLimits

pytestmark = pytest.mark.django_db(transaction=True)


class Recorder:
    """Django's place in the chain: reads the whole body, as Django's ASGI handler does, then answers 200."""

    def __init__(self):
        self.called, self.body, self.aborted = False, b"", False

    async def __call__(self, scope, receive, send):
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.aborted = True
                return
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(path: str, chunks: list[bytes], *, headers=(), method="POST"):
    django, sent, pulled = Recorder(), [], []
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        pulled.append(True)
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers), "client": ["10.0.0.9", 1]}
    await RequestLimits(django)(scope, receive, send)
    return django, sent[0]["status"], len(pulled)


async def test_a_declared_length_over_the_limit_is_refused_before_django_runs(settings):
    django, status, pulled = await call("/accounts/login/", [b"x"], headers=[(b"content-length", str(settings.REQUEST_BODY_MAX_BYTES + 1).encode())])
    assert status == 413 and not django.called and pulled == 0


async def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(settings):
    chunks = [b"x" * 65536] * (settings.REQUEST_BODY_MAX_BYTES // 65536 + 50)
    django, status, pulled = await call("/accounts/login/", chunks)
    assert status == 413 and django.aborted
    assert len(django.body) <= settings.REQUEST_BODY_MAX_BYTES and pulled < len(chunks)


async def test_an_upload_piece_from_a_signed_out_client_is_refused_before_a_byte_is_read():
    django, status, pulled = await call("/meetings/1/recordings/uploads/" + "0" * 32, [b"\0" * 1000])
    assert status == 403 and not django.called and pulled == 0


async def test_a_small_request_passes_untouched():
    django, status, _ = await call("/accounts/login/", [b"username=a&password=b"])
    assert status == 200 and django.body == b"username=a&password=b"
