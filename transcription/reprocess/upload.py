"""Receiving an uploaded recording: straight to a file beside the media store, checksummed on the way.

Django's default handlers keep small files in memory and put large ones in the system temp folder;
a recording of hours is neither small nor welcome in /tmp (often a small RAM disk). This handler
writes every chunk to a file under MEDIA_ROOT/uploads (same file system as the recordings, so keeping
it is a rename, not a copy of gigabytes), hashes it with SHA-256 as it goes, and stops reading
once the size limit is passed.
"""
import hashlib
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers, StopUpload


def upload_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "uploads"


def upload_limit_bytes() -> int:
    return settings.RECORDING_UPLOAD_MAX_MB * 1024 * 1024


class DiskUpload(UploadedFile):
    """An upload being written to `path`; `sha256` is set when the last byte has arrived."""

    def __init__(self, directory: Path, name: str, content_type: str):
        directory.mkdir(parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=directory, suffix=".part")
        super().__init__(os.fdopen(fd, "wb"), name, content_type, 0, None)
        self.path = path
        self.sha256 = ""

    def temporary_file_path(self) -> str:
        return self.path

    def discard(self) -> None:
        self.file.close()
        Path(self.path).unlink(missing_ok=True)


class RecordingUploadHandler(FileUploadHandler):
    chunk_size = 1 << 20  # 1 MiB writes; Django's default 64 KiB means many small syscalls on GB files

    def __init__(self, request=None, *, limit: int, directory: Path | None = None):
        super().__init__(request)
        self.limit, self.directory = limit, directory or upload_dir()
        self.received, self.too_large = 0, False
        self.upload: DiskUpload | None = None
        self._digest = hashlib.sha256()

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        if self.upload is not None:  # one recording per request; a second file part is not read
            raise StopUpload(connection_reset=True)
        self.upload = DiskUpload(self.directory, file_name, self.content_type or "application/octet-stream")
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_large = True
            self.upload.discard()
            raise StopUpload(connection_reset=True)
        self._digest.update(raw_data)
        self.upload.file.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.upload.file.flush()
        os.fsync(self.upload.file.fileno())
        self.upload.file.close()
        self.upload.size, self.upload.sha256 = file_size, self._digest.hexdigest()
        return self.upload

    def upload_interrupted(self):
        if self.upload is not None:
            self.upload.discard()

    def cleanup(self) -> None:
        """Remove the file unless it was moved into the media store."""
        if self.upload is not None:
            self.upload.discard()
