"""The live recording: PCM16 appended to a WAV file on disk as it streams.

The header's sizes are rewritten every second of audio and on close, so a server that dies mid-meeting
leaves a file that plays up to the last second. Reopening the same file appends (a reconnecting host
continues one recording). Not thread-safe: one writer, called from one thread at a time.
"""
import struct
from pathlib import Path

SAMPLE_RATE = 16_000
BYTES_PER_SAMPLE = 2
HEADER_BYTES = 44
HEADER_EVERY_BYTES = SAMPLE_RATE * BYTES_PER_SAMPLE  # one second of audio


def wav_header(data_bytes: int) -> bytes:
    byte_rate = SAMPLE_RATE * BYTES_PER_SAMPLE
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, byte_rate, BYTES_PER_SAMPLE, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )


class WavAppender:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size >= HEADER_BYTES:
            self._fh = open(self.path, "r+b")
            # Trust the file's length over its header: the header may lag the last second written.
            self.data_bytes = (self.path.stat().st_size - HEADER_BYTES) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE
            self._fh.truncate(HEADER_BYTES + self.data_bytes)
        else:
            self._fh = open(self.path, "w+b")
            self._fh.write(wav_header(0))
            self.data_bytes = 0
        self._fh.seek(0, 2)
        self._unsynced = 0

    @property
    def duration_ms(self) -> int:
        return self.data_bytes * 1000 // (SAMPLE_RATE * BYTES_PER_SAMPLE)

    def append(self, pcm: bytes) -> None:
        assert len(pcm) % BYTES_PER_SAMPLE == 0, len(pcm)
        self._fh.write(pcm)
        self.data_bytes += len(pcm)
        self._unsynced += len(pcm)
        if self._unsynced >= HEADER_EVERY_BYTES:
            self._write_header()

    def _write_header(self) -> None:
        self._fh.seek(0)
        self._fh.write(wav_header(self.data_bytes))
        self._fh.seek(0, 2)
        self._fh.flush()
        self._unsynced = 0

    def close(self) -> None:
        if self._fh.closed:
            return
        self._write_header()
        self._fh.close()
