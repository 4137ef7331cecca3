"""The live recording: PCM16 appended to a WAV file on disk as it streams, each frame exactly once.

The header's sizes are rewritten every second of audio and on close, so a server that dies mid-meeting
leaves a file that plays up to the last second. Reopening the same file appends (a reconnecting host
continues one recording). Not thread-safe: one writer, called from one thread at a time.

Every frame a host page sends has a sequence number within that page's capture. A page that
reconnects resends what the server has not confirmed, so the same frame can arrive twice: the last
appended (capture, seq) is kept beside the WAV (`<name>.wav.seq`, one fixed-size record written before
the samples) and a frame at or below it is skipped. Because the mark is on disk, a restarted server
skips the same frames: after a crash between the mark and the samples, the file is cut back to where
that frame began and the frame counts as not appended, so its resend is taken.
"""
import struct
from pathlib import Path

SAMPLE_RATE = 16_000
BYTES_PER_SAMPLE = 2
HEADER_BYTES = 44
HEADER_EVERY_BYTES = SAMPLE_RATE * BYTES_PER_SAMPLE  # one second of audio
MARK = struct.Struct("<64sQQQ")  # capture id, seq, data bytes before the frame, data bytes after it


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
        self.capture, self.last_seq = "", 0
        if self.path.exists() and self.path.stat().st_size >= HEADER_BYTES:
            self._fh = open(self.path, "r+b")
            # Trust the file's length over its header: the header may lag the last second written.
            self.data_bytes = (self.path.stat().st_size - HEADER_BYTES) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE
            self._read_mark()
            self._fh.truncate(HEADER_BYTES + self.data_bytes)
        else:
            self._fh = open(self.path, "w+b")
            self._fh.write(wav_header(0))
            self.data_bytes = 0
        self._fh.seek(0, 2)
        self._mark = open(self.mark_path, "r+b" if self.mark_path.exists() else "w+b")
        self._unsynced = 0

    @property
    def mark_path(self) -> Path:
        return self.path.with_name(self.path.name + ".seq")

    @property
    def duration_ms(self) -> int:
        return self.data_bytes * 1000 // (SAMPLE_RATE * BYTES_PER_SAMPLE)

    def _read_mark(self) -> None:
        try:
            raw = self.mark_path.read_bytes()[: MARK.size]
            capture, seq, before, after = MARK.unpack(raw)
        except (OSError, struct.error):
            return
        self.capture = capture.rstrip(b"\0").decode("ascii", "replace")
        if self.data_bytes >= after:
            self.last_seq = seq
        elif self.data_bytes >= before:  # died between the mark and the samples: the frame is not in
            self.last_seq, self.data_bytes = seq - 1, before
        else:
            self.last_seq = seq - 1

    def acked(self, capture: str) -> int:
        """The last seq of `capture` in the file (0 when this capture has appended nothing)."""
        return self.last_seq if capture and capture == self.capture else 0

    def is_new(self, capture: str, seq: int) -> bool:
        return not capture or capture != self.capture or seq > self.last_seq

    def append(self, pcm: bytes, capture: str = "", seq: int = 0) -> bool:
        """Append a frame unless it is already in the file; returns whether it was appended."""
        assert len(pcm) % BYTES_PER_SAMPLE == 0, len(pcm)
        if not self.is_new(capture, seq):
            return False
        if capture:
            self._mark.seek(0)
            self._mark.write(MARK.pack(capture.encode("ascii")[:64], seq, self.data_bytes, self.data_bytes + len(pcm)))
            self._mark.flush()
            self.capture, self.last_seq = capture, seq
        self._fh.write(pcm)
        self._fh.flush()  # to the OS at once: a killed server must not lose frames its mark counts as in
        self.data_bytes += len(pcm)
        self._unsynced += len(pcm)
        if self._unsynced >= HEADER_EVERY_BYTES:
            self._write_header()
        return True

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
        self._mark.close()
