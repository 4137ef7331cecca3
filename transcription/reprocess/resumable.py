"""Uploads that survive a broken connection: the browser sends the file in pieces and can ask how far
the server got, then go on from there (also after reloading the page).

State is two files under MEDIA_ROOT/uploads per upload: `<token>.part` (the bytes so far) and
`<token>.json` (meeting, user, declared name and size). The token is random and only ever used by the
user and meeting it was made for, so guessing one gains nothing.

Pieces of one upload are written one at a time: a writer holds an exclusive lock (flock) on the
`.part` file while it checks the offset and appends, so two pieces sent at once for the same offset
cannot both be appended (the second is told where the upload stands and sends from there). Uploads
left unfinished are removed by `expire_abandoned` (a beat task).

Not the tus protocol: its server libraries for Django keep uploads outside our per-meeting permission
and audit path, and these four small endpoints give the same offset, resume and check semantics.
"""
import fcntl
import hashlib
import time
from contextlib import contextmanager
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


@contextmanager
def _writing(part: Path):
    """The `.part` file opened for appending, locked against every other writer of the same upload."""
    try:
        out = os.fdopen(os.open(part, os.O_WRONLY | os.O_APPEND), "ab")  # never creates: a finished upload stays gone
    except FileNotFoundError:
        raise UploadRefused("Unknown upload.", 404) from None
    with out:
        try:
            fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UploadRefused("Another piece of this upload is being received; ask how far it got and go on from there.",
                                409, part.stat().st_size) from None
        try:
            if not part.exists() or part.stat().st_ino != os.fstat(out.fileno()).st_ino:
                raise UploadRefused("Unknown upload.", 404)  # finished or removed while we waited to open it
            yield out
        finally:
            fcntl.flock(out.fileno(), fcntl.LOCK_UN)


def append(token: str, stream, *, offset: int, length: int, meeting_id: int, user_id: int) -> int:
    """Append `length` bytes read from `stream` at `offset`; return the bytes received so far."""
    state = info(token, meeting_id=meeting_id, user_id=user_id)
    part, _ = _paths(token)
    with _writing(part) as out:
        received = os.fstat(out.fileno()).st_size  # read under the lock: the check and the append are one step
        if offset != received:  # a piece sent twice or out of order: tell the browser where to go on
            raise UploadRefused("The upload continues from another position.", 409, received)
        if offset + length > state["size"]:
            raise UploadRefused("More data was sent than the file holds.", 400, received)
        _copy(stream, out, length)
    return part.stat().st_size


def _copy(stream, out, length: int) -> None:
    left = length
    while left > 0:
        block = stream.read(min(READ_BLOCK, left))
        if not block:
            break  # the connection broke: what arrived is kept, the browser asks and resumes
        out.write(block)
        left -= len(block)
    out.flush()


def finish(token: str, *, meeting_id: int, user_id: int) -> DiskUpload:
    """The complete file as an upload ready for `recording_upload`, checksummed from disk."""
    state = info(token, meeting_id=meeting_id, user_id=user_id)
    if state["received"] != state["size"]:
        raise UploadRefused("The upload is not complete yet.", 409, state["received"])
    part, meta = _paths(token)
    digest = hashlib.sha256()
    with _writing(part), open(part, "rb") as fh:  # no piece may land while the file is checksummed and moved
        while block := fh.read(READ_BLOCK):
            digest.update(block)
        upload = DiskUpload(part.parent, state["name"], state["content_type"])
        upload.file.close()
        os.replace(part, upload.path)  # the finished bytes take the upload's own name
    meta.unlink(missing_ok=True)
    upload.size, upload.sha256 = state["size"], digest.hexdigest()
    return upload


def expire_abandoned(*, older_than_s: float) -> int:
    """Remove uploads (and stray partial files) not written to for `older_than_s`; return how many files.

    An upload a piece is being written to right now is left alone, however old it looks."""
    folder = upload_dir()
    if not folder.is_dir():
        return 0
    cutoff, removed = time.time() - older_than_s, 0
    for path in folder.iterdir():
        if path.suffix not in (".part", ".json") or not path.is_file():
            continue
        try:
            if path.stat().st_mtime >= cutoff:
                continue
            if path.suffix == ".part":
                with _writing(path):
                    path.unlink()
            else:
                path.unlink()
            removed += 1
        except (UploadRefused, FileNotFoundError):
            continue
    return removed
