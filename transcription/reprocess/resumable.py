"""Uploads that survive a broken connection: the browser sends the file in pieces and can ask how far
the server got, then go on from there (also after reloading the page).

State is two files under MEDIA_ROOT/uploads per upload: `<token>.part` (the bytes so far) and
`<token>.json` (meeting, user, declared name and size). The token is random and only ever used by the
user and meeting it was made for, so guessing one gains nothing.
"""
import hashlib
import json
import os
import re
import secrets
from pathlib import Path

from .upload import DiskUpload, upload_dir, upload_limit_bytes

_TOKEN = re.compile(r"^[0-9a-f]{32}$")
READ_BLOCK = 1 << 20


class UploadRefused(Exception):
    """The piece or the upload cannot be accepted; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, received: int | None = None):
        super().__init__(message)
        self.status, self.received = status, received


def _paths(token: str) -> tuple[Path, Path]:
    if not _TOKEN.match(token or ""):
        raise UploadRefused("Unknown upload.", 404)
    return upload_dir() / f"{token}.part", upload_dir() / f"{token}.json"


def start(*, meeting_id: int, user_id: int, name: str, size: int, content_type: str) -> str:
    if size <= 0:
        raise UploadRefused("The file is empty.")
    if size > upload_limit_bytes():
        raise UploadRefused("The file is larger than this site accepts.", 413)
    token = secrets.token_hex(16)
    part, meta = _paths(token)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.touch()
    meta.write_text(json.dumps({"meeting": meeting_id, "user": user_id, "name": name[:255], "size": size, "content_type": content_type[:100]}))
    return token


def info(token: str, *, meeting_id: int, user_id: int) -> dict:
    part, meta = _paths(token)
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        raise UploadRefused("Unknown upload.", 404) from None
    if data["meeting"] != meeting_id or data["user"] != user_id:
        raise UploadRefused("Unknown upload.", 404)
    return {**data, "received": part.stat().st_size if part.exists() else 0}


def append(token: str, stream, *, offset: int, length: int, meeting_id: int, user_id: int) -> int:
    """Append `length` bytes read from `stream` at `offset`; return the bytes received so far."""
    state = info(token, meeting_id=meeting_id, user_id=user_id)
    if offset != state["received"]:  # a piece sent twice or out of order: tell the browser where to go on
        raise UploadRefused("The upload continues from another position.", 409, state["received"])
    if offset + length > state["size"]:
        raise UploadRefused("More data was sent than the file holds.", 400, state["received"])
    part, _ = _paths(token)
    with open(part, "ab") as out:
        left = length
        while left > 0:
            block = stream.read(min(READ_BLOCK, left))
            if not block:
                break  # the connection broke: what arrived is kept, the browser asks and resumes
            out.write(block)
            left -= len(block)
    return part.stat().st_size


def finish(token: str, *, meeting_id: int, user_id: int) -> DiskUpload:
    """The complete file as an upload ready for `recording_upload`, checksummed from disk."""
    state = info(token, meeting_id=meeting_id, user_id=user_id)
    if state["received"] != state["size"]:
        raise UploadRefused("The upload is not complete yet.", 409, state["received"])
    part, meta = _paths(token)
    digest = hashlib.sha256()
    with open(part, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            digest.update(block)
    upload = DiskUpload(part.parent, state["name"], state["content_type"])
    upload.file.close()
    os.replace(part, upload.path)  # the finished bytes take the upload's own name
    meta.unlink(missing_ok=True)
    upload.size, upload.sha256 = state["size"], digest.hexdigest()
    return upload
