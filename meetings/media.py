"""Serving recorded audio with byte ranges, so that players can seek in hours-long recordings."""
import os
import re
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


def _read_range(path: str, start: int, length: int):
    with open(path, "rb") as fh:
        fh.seek(start)
        while length > 0:
            data = fh.read(min(CHUNK, length))
            if not data:
                return
            length -= len(data)
            yield data


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """'bytes=100-199' -> (100, 199) inclusive; None if absent or unsatisfiable. Multiple ranges are not served."""
    match = _RANGE.match(header.strip())
    if not match or size == 0:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the final N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start > end or start >= size:
        return None
    return start, end


def accel_redirect_response(path: str, content_type: str) -> HttpResponse | None:
    """Hand the file to nginx (X-Accel-Redirect) when configured and it lies in the media store; else None.

    Call only after the permission check and audit: nginx's internal location serves whatever it is told,
    with byte ranges, so the bytes no longer pass through Python.
    """
    prefix = settings.MEDIA_ACCEL_REDIRECT
    if not prefix:
        return None
    try:
        relative = Path(path).resolve().relative_to(Path(settings.MEDIA_ROOT).resolve())
    except ValueError:
        return None  # outside the media store: nginx's internal location could not reach it
    response = HttpResponse(content_type=content_type)
    response["X-Accel-Redirect"] = prefix + quote(relative.as_posix())
    return response


def file_response(path: str, content_type: str, *, range_header: str | None, download_name: str | None = None) -> HttpResponse:
    response = accel_redirect_response(path, content_type)
    if response is not None:
        response["Cache-Control"] = "private, no-store"
        if download_name:
            response["Content-Disposition"] = f'attachment; filename="{download_name}"'
        return response
    size = os.path.getsize(path)
    if range_header:
        span = parse_range(range_header, size)
        if span is None:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        start, end = span
        response = StreamingHttpResponse(_read_range(path, start, end - start + 1), status=206, content_type=content_type)
        response["Content-Length"] = str(end - start + 1)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        response = FileResponse(open(path, "rb"), content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, no-store"
    if download_name:
        response["Content-Disposition"] = f'attachment; filename="{download_name}"'
    return response
