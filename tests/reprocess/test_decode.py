"""Recordings in every accepted format to 16 kHz mono PCM16, streamed; bad files refused clearly."""
import tracemalloc

import av
import numpy as np
import pytest

from transcription.reprocess import decode
from .conftest import SR, write_wav

FORMATS = [  # (suffix, container, codec, rate)
    ("flac", "flac", "flac", 16000),
    ("mp3", "mp3", "libmp3lame", 44100),
    ("m4a", "ipod", "aac", 48000),
    ("ogg", "ogg", "libopus", 48000),
    ("webm", "webm", "libopus", 48000),
    ("mp4", "mp4", "aac", 44100),
]


def encode(pcm: np.ndarray, path, container: str, codec: str, rate: int) -> str:
    """`pcm` (16 kHz int16) re-encoded with PyAV, stereo at `rate`, like a phone or laptop recording."""
    out = av.open(str(path), "w", format=container)
    stream = out.add_stream(codec, rate=rate, layout="stereo")
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="stereo", rate=rate)
    fifo = av.AudioFifo()  # AAC and Opus take frames of exactly frame_size samples
    size = stream.codec_context.frame_size or 1024

    def drain(final=False):
        while (f := fifo.read(size, partial=final)) is not None:
            out.mux(stream.encode(f))
            if final and fifo.samples == 0:
                break

    for start in range(0, len(pcm), SR // 10):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[None, start:start + SR // 10]), format="s16", layout="mono")
        frame.sample_rate = SR
        for f in resampler.resample(frame):
            fifo.write(f)
        drain()
    for f in resampler.resample(None):
        fifo.write(f)
    drain(final=True)
    out.mux(stream.encode(None))
    out.close()
    return str(path)


@pytest.mark.parametrize("suffix,container,codec,rate", FORMATS)
def test_each_accepted_format_decodes_to_16k_mono(two_voices, tmp_path, suffix, container, codec, rate):
    _, pcm, _ = two_voices
    path = encode(pcm, tmp_path / f"meeting.{suffix}", container, codec, rate)
    assert decode.probe(path).codec
    samples = decode.decode_to_pcm(path, str(tmp_path / "out.pcm"))
    out = decode.open_pcm(str(tmp_path / "out.pcm"))
    assert len(out) == samples
    assert abs(samples - len(pcm)) < 0.15 * SR, (samples, len(pcm))  # encoder padding only
    # The same speech comes back: loud where the original is loud.
    env = lambda x: np.abs(x[: len(pcm) // 1600 * 1600].astype(np.float32)).reshape(-1, 1600).mean(axis=1)
    n = min(len(env(pcm)), len(env(np.asarray(out))))
    assert np.corrcoef(env(pcm)[:n], env(np.asarray(out))[:n])[0, 1] > 0.8


def test_wav_decodes_sample_exact(two_voices, tmp_path):
    path, pcm, _ = two_voices
    decode.decode_to_pcm(path, str(tmp_path / "out.pcm"))
    assert np.array_equal(decode.open_pcm(str(tmp_path / "out.pcm")), pcm)


@pytest.mark.parametrize("content,message", [
    (b"This is not audio at all, just a note.\n" * 100, "could not be opened"),
    (b"", "could not be opened"),
])
def test_a_file_that_is_not_audio_is_refused_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "notes.mp3"
    path.write_bytes(content)
    with pytest.raises(decode.RecordingUnreadable, match=message):
        decode.probe(str(path))


def test_a_truncated_recording_is_refused(two_voices, tmp_path):
    _, pcm, _ = two_voices
    good = encode(pcm, tmp_path / "meeting.m4a", "ipod", "aac", 48000)
    bad = tmp_path / "cut.m4a"
    bad.write_bytes(open(good, "rb").read()[:2000])  # the moov atom is at the end: nothing playable
    with pytest.raises(decode.RecordingUnreadable):
        decode.probe(str(bad))


def write_stereo_wav(path, pcm: np.ndarray, rate: int = SR) -> str:
    """`pcm` as a 2-channel WAV: not what the copy path takes, so PyAV decodes and resamples it."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm, 2).tobytes())
    return str(path)


@pytest.mark.parametrize("layout", ["16 kHz mono (copied)", "stereo (decoded)"])
def test_decoding_a_long_recording_holds_only_a_frame_in_memory(tmp_path, layout):
    ten_minutes = (np.sin(np.arange(SR * 600) / 7.0) * 8000).astype(np.int16)  # 19 MB as PCM16
    if layout.startswith("stereo"):
        path = write_stereo_wav(tmp_path / "long.wav", ten_minutes)
    else:
        path = write_wav(tmp_path / "long.wav", ten_minutes)
    del ten_minutes
    seen = []
    tracemalloc.start()
    samples = decode.decode_to_pcm(path, str(tmp_path / "long.pcm"), on_progress=seen.append)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert samples == SR * 600
    assert peak < 4 * 1024 * 1024, peak
    assert seen[-1] == pytest.approx(1.0) and seen == sorted(seen)


def test_a_stereo_wav_is_mixed_down_to_the_same_speech(two_voices, tmp_path):
    _, pcm, _ = two_voices
    path = write_stereo_wav(tmp_path / "stereo.wav", pcm)
    assert decode.decode_to_pcm(path, str(tmp_path / "out.pcm")) == len(pcm)
    assert np.abs(decode.open_pcm(str(tmp_path / "out.pcm")).astype(np.int32) - pcm).max() <= 1


def test_a_live_recording_cut_off_by_a_crash_keeps_its_last_second(tmp_path):
    """The live recorder rewrites the WAV header once a second: after a crash the header lags the data."""
    from transcription.live.recorder import WavAppender

    pcm = (np.sin(np.arange(int(SR * 2.5)) / 5.0) * 9000).astype(np.int16)
    recorder = WavAppender(tmp_path / "live.wav")
    for start in range(0, len(pcm), 1280):  # 80 ms frames, as the host sends them
        recorder.append(pcm[start:start + 1280].tobytes())
    recorder._fh.flush()  # the process dies here: no close, the header still says 2 s
    assert decode.decode_to_pcm(str(tmp_path / "live.wav"), str(tmp_path / "out.pcm")) == len(pcm)
    assert np.array_equal(decode.open_pcm(str(tmp_path / "out.pcm")), pcm)


def test_wav_chunks_around_the_samples_and_a_streaming_header_are_handled(tmp_path):
    import struct

    pcm = (np.arange(SR) % 2000 - 1000).astype(np.int16)
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, SR, SR * 2, 2, 16)
    info = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"  # odd length: padded to even
    data = pcm.tobytes()
    tail = b"LIST" + struct.pack("<I", 4) + b"INFO"
    with_chunks = tmp_path / "chunks.wav"
    body = b"WAVE" + fmt + info + b"data" + struct.pack("<I", len(data)) + data + tail
    with_chunks.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert decode.decode_to_pcm(str(with_chunks), str(tmp_path / "a.pcm")) == SR
    assert np.array_equal(decode.open_pcm(str(tmp_path / "a.pcm")), pcm)
    streaming = tmp_path / "streaming.wav"  # sizes unknown when the header was written
    streaming.write_bytes(b"RIFF" + b"\xff" * 4 + b"WAVE" + fmt + b"data" + b"\xff" * 4 + data)
    assert decode.decode_to_pcm(str(streaming), str(tmp_path / "b.pcm")) == SR
    assert np.array_equal(decode.open_pcm(str(tmp_path / "b.pcm")), pcm)
