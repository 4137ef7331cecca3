"""Any recording to 16 kHz mono PCM16 on disk, streamed with PyAV so memory stays bounded.

A three-hour recording is 173 M samples: 346 MB as PCM16, 691 MB as float32. Decoding frame by frame
and writing each resampled frame straight to the output keeps only one frame (a few ms) in memory.

A WAV that already holds 16 kHz mono PCM16 (every live recording) is copied, not decoded: PyAV hands
a WAV over in frames of a few thousand samples, and the Python work per frame made three hours take a
minute on a two-core machine; the copy takes a fraction of a second.
"""
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
BYTES_PER_SAMPLE = 2
PROBE_SECONDS = 5  # decoding this much proves the codec works without reading a multi-hour file


class RecordingUnreadable(Exception):
    """The file is not audio we can decode; the message is written for the person who uploaded it."""


@dataclass(frozen=True)
class Probe:
    duration_ms: int | None  # None when the container does not say
    codec: str
    container: str


def _open(path: str):
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        log.info("recording %s could not be opened: %r", path, exc)
        raise RecordingUnreadable("This file could not be opened as audio or video. "
                                  "Upload a WAV, FLAC, MP3, M4A/AAC, OGG/Opus, WebM or MP4 recording.") from None
    if not container.streams.audio:
        container.close()
        raise RecordingUnreadable("This file has no sound track. Upload a recording that contains audio.")
    return container


def _duration_ms(container, stream) -> int | None:
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * stream.time_base * 1000)
    if container.duration is not None:
        return int(container.duration * 1000 // av.time_base)
    return None


def probe(path: str) -> Probe:
    """Open the file and decode its first seconds; raise RecordingUnreadable if either fails."""
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        decoded = 0.0
        try:
            for frame in container.decode(stream):
                decoded += frame.samples / (frame.sample_rate or SAMPLE_RATE)
                if decoded >= PROBE_SECONDS:
                    break
        except (av.FFmpegError, ValueError) as exc:
            log.info("recording %s could not be decoded: %r", path, exc)
            raise RecordingUnreadable("The sound track could not be decoded; the file may be damaged or cut short.") from None
        if decoded == 0:
            raise RecordingUnreadable("The sound track is empty: no audio could be decoded from this file.")
        return Probe(_duration_ms(container, stream), stream.codec_context.name, container.format.name)
    finally:
        container.close()


class RecordingTooLong(RecordingUnreadable):
    """The recording runs past the site's limit (settings.RECORDING_MAX_HOURS)."""


def too_long_message(max_hours: int) -> str:
    hours = "1 hour" if max_hours == 1 else f"{max_hours} hours"
    return (f"This recording is longer than the {hours} this site transcribes. "
            "Split it into shorter parts, or ask an administrator to raise the limit.")


def decode_to_pcm(path: str, out_path: str, *, on_progress: Callable[[float], None] | None = None, max_samples: int | None = None) -> int:
    """Write the first audio stream of `path` to `out_path` as raw 16 kHz mono int16; return the sample count.

    Written to a temporary name and renamed at the end, so a crash never leaves a short file that a
    retried task would take for finished. `on_progress(fraction)` is called about once per 1 % and may
    raise to stop (cancellation). Past `max_samples` it stops with RecordingTooLong, whatever the
    container's header claimed (a small file can expand into hours of audio).
    """
    if (data := _pcm16_mono_wav_data(path)) is not None:
        if max_samples is not None and data[1] // BYTES_PER_SAMPLE > max_samples:
            raise RecordingTooLong(too_long_message(max_samples // SAMPLE_RATE // 3600))
        return _copy_pcm(path, out_path, *data, on_progress=on_progress)
    container = _open(path)
    tmp = f"{out_path}.part"
    samples, reported = 0, -1.0
    try:
        stream = container.streams.audio[0]
        duration_ms = _duration_ms(container, stream)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with open(tmp, "wb") as out:
            try:
                for frame in container.decode(stream):
                    samples += _write(out, resampler.resample(frame))
                    if max_samples is not None and samples > max_samples:
                        raise RecordingTooLong(too_long_message(max_samples // SAMPLE_RATE // 3600))
                    if on_progress and duration_ms:
                        fraction = min(1.0, samples * 1000 / SAMPLE_RATE / duration_ms)
                        if fraction - reported >= 0.01:
                            on_progress(fraction)
                            reported = fraction
                samples += _write(out, resampler.resample(None))  # flush the resampler's tail
            except (av.FFmpegError, ValueError) as exc:
                log.info("decoding stopped at sample %s: %r", samples, exc)
                raise RecordingUnreadable(f"Decoding stopped {samples / SAMPLE_RATE:.0f} s into the recording; the file may be damaged. "
                                          "Export it again from the recorder, or upload another copy.") from None
            out.flush()
            os.fsync(out.fileno())
        if samples == 0:
            raise RecordingUnreadable("No audio could be decoded from this recording.")
        os.replace(tmp, out_path)
        if on_progress:
            on_progress(1.0)
        return samples
    finally:
        container.close()
        if os.path.exists(tmp):
            os.unlink(tmp)


def _pcm16_mono_wav_data(path: str) -> tuple[int, int] | None:
    """(offset, length) of the samples of a RIFF WAV holding 16 kHz mono 16-bit PCM, or None for anything else.

    When no chunk follows the samples, their length is what the file holds, not what the header says:
    a recorder that stopped unexpectedly leaves a header that lags the last second (or says 0xFFFFFFFF)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            riff = fh.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
                return None
            pcm16_mono = False
            while header := fh.read(8):
                if len(header) < 8:
                    return None
                chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
                start = fh.tell()
                if chunk == b"fmt ":
                    fmt = fh.read(min(length, 40))
                    if len(fmt) < 16:
                        return None
                    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
                    if tag == 0xFFFE and len(fmt) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format says PCM or not
                        tag = struct.unpack("<H", fmt[24:26])[0]
                    pcm16_mono = (tag, channels, rate, bits) == (1, 1, SAMPLE_RATE, 16)
                elif chunk == b"data":
                    if not pcm16_mono:
                        return None
                    end = start + length
                    if end < size:
                        fh.seek(end + (length & 1))
                        if not _is_chunk_header(fh.read(8), size - fh.tell()):
                            end = size  # samples written after the header was: they are the recording's too
                    return start, (min(end, size) - start) // BYTES_PER_SAMPLE * BYTES_PER_SAMPLE
                fh.seek(start + length + (length & 1))  # chunks are padded to an even length
    except OSError:
        return None
    return None


def _is_chunk_header(header: bytes, room: int) -> bool:
    """Whether 8 bytes read as a RIFF chunk header (a printable id and a length that fits) rather than samples."""
    return len(header) == 8 and all(32 <= b < 127 for b in header[:4]) and struct.unpack("<I", header[4:])[0] <= room


def _copy_pcm(path: str, out_path: str, offset: int, length: int, *, on_progress=None) -> int:
    if length == 0:
        raise RecordingUnreadable("No audio could be decoded from this recording.")
    tmp = f"{out_path}.part"
    try:
        with open(path, "rb") as src, open(tmp, "wb") as out:
            src.seek(offset)
            copied, reported = 0, -1.0
            while copied < length and (block := src.read(min(1 << 20, length - copied))):
                out.write(block)
                copied += len(block)
                if on_progress and copied / length - reported >= 0.01:
                    reported = copied / length
                    on_progress(min(reported, 1.0))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, out_path)
        if on_progress:
            on_progress(1.0)
        return copied // BYTES_PER_SAMPLE
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write(out, frames) -> int:
    n = 0
    for frame in frames:
        pcm = frame.to_ndarray()  # (1, samples) int16 for packed mono s16
        assert pcm.dtype == np.int16, pcm.dtype
        out.write(pcm.tobytes())
        n += pcm.shape[-1]
    return n


def open_pcm(path: str) -> np.ndarray:
    """The decoded file as a read-only int16 memory map: slices are read from disk on demand."""
    if os.path.getsize(path) == 0:
        return np.zeros(0, dtype=np.int16)
    return np.memmap(path, dtype=np.int16, mode="r")
