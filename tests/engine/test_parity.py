"""The engine's tokens equal transformers' own, exactly, on the tiny random-weight model (CPU, float32)."""
import time

import numpy as np
import pytest

from . import reference as R
from .conftest import as_float, chirp


def engine_tokens(engine, pcm, delay_ms, chunk_seed=0):
    """Push `pcm` in chunks of random size (1 sample to 0.3 s), close, return the token ids."""
    stream = engine.open_stream(delay_ms=delay_ms)
    rng = np.random.default_rng(chunk_seed)
    i = 0
    while i < len(pcm):
        n = int(rng.integers(1, 4800))
        stream.push(pcm[i:i + n])
        i += n
    return [t.token_id for t in stream.close_nowait().result(120).tokens]


def test_the_tiny_model_output_depends_on_the_audio(tiny):
    model, processor, _ = tiny
    a = R.generate_tokens(model, processor, as_float(chirp(3.0, seed=0)), 480)
    b = R.generate_tokens(model, processor, as_float(chirp(3.0, f0=450.0, seed=1)), 480)
    assert len(set(a)) > 5, a
    assert sum(x != y for x, y in zip(a, b)) > 5, (a, b)


@pytest.mark.parametrize("delay_ms", [80, 480, 2400])
def test_transformers_streaming_path_agrees_with_generate(tiny, delay_ms):
    model, processor, _ = tiny
    pcm = as_float(chirp(2.5, seed=3))
    assert R.streaming_tokens(model, processor, pcm, delay_ms) == R.generate_tokens(model, processor, pcm, delay_ms)


@pytest.mark.parametrize(("delay_ms", "seconds"), [(80, 1.3), (480, 0.0), (480, 4.1), (960, 2.0), (2400, 3.0)])
def test_a_stream_matches_generate(engine, tiny, delay_ms, seconds):
    model, processor, spec = tiny
    pcm = chirp(seconds, seed=int(seconds * 10))
    expected = R.until_eos(R.generate_tokens(model, processor, as_float(pcm), delay_ms), spec.eos_id)
    got = engine_tokens(engine, pcm, delay_ms)
    assert got[: len(expected)] == expected


def test_streams_joining_and_leaving_match_generate(engine, tiny):
    """Six streams, different delays and lengths, opened and closed at different times, pushed interleaved."""
    model, processor, spec = tiny
    plans = [(480, 3.0, 0.0), (80, 1.0, 0.2), (960, 2.2, 0.5), (2400, 1.5, 0.1), (480, 0.6, 1.2), (1600, 2.0, 1.6)]
    audio = [chirp(sec, seed=10 + i) for i, (_, sec, _) in enumerate(plans)]
    streams: dict[int, object] = {}
    finals = {}
    tick = 640  # 40 ms of audio per round, across all streams
    t = 0
    while len(finals) < len(plans):
        for i, (delay, sec, start_s) in enumerate(plans):
            begin = int(start_s * 16000) // tick * tick
            if i not in streams and t >= begin:
                streams[i] = engine.open_stream(delay_ms=delay)
            if i in streams and i not in finals:
                offset = t - begin
                streams[i].push(audio[i][offset:offset + tick])
                if offset + tick >= len(audio[i]):
                    finals[i] = streams[i].close_nowait()
        t += tick
    for i, (delay, _, _) in enumerate(plans):
        got = [x.token_id for x in finals[i].result(120).tokens]
        expected = R.until_eos(R.generate_tokens(model, processor, as_float(audio[i]), delay), spec.eos_id)
        assert got[: len(expected)] == expected, f"stream {i} (delay {delay} ms) differs"


def test_int16_and_float32_pcm_give_the_same_tokens(engine):
    pcm = chirp(1.2, seed=7)
    assert engine_tokens(engine, pcm, 480) == engine_tokens(engine, as_float(pcm), 480, chunk_seed=5)


def test_real_speech_through_the_tiny_model_matches_generate(engine, tiny, speech):
    model, processor, spec = tiny
    expected = R.until_eos(R.generate_tokens(model, processor, as_float(speech), 480), spec.eos_id)
    got = engine_tokens(engine, speech, 480)
    assert got[: len(expected)] == expected
    silence = R.generate_tokens(model, processor, np.zeros_like(as_float(speech)), 480)
    assert expected != silence[: len(expected)], "the tiny model ignores the speech; parity would be vacuous"


def test_offline_transcription_matches_generate(engine, tiny):
    model, processor, spec = tiny
    recordings = [chirp(2.0, seed=21), chirp(3.5, seed=22)]
    transcripts = engine.transcribe_many(recordings, delay_ms=960)
    for pcm, tr in zip(recordings, transcripts):
        expected = R.until_eos(R.generate_tokens(model, processor, as_float(pcm), 960), spec.eos_id)
        assert [t.token_id for t in tr.tokens][: len(expected)] == expected
        assert tr.text == spec.decode([t.token_id for t in tr.tokens])


def test_a_meeting_keeps_its_captions_when_in_one_round_another_ends_and_a_third_opens_and_is_dropped(engine, tiny):
    """A host that reconnects and gives up at once opens a stream and drops it before the engine started it.
    If another stream ended in the same round, the compaction moves a running stream into the freed slot;
    starting the dropped newcomer must not then reset that slot under the running meeting."""
    model, processor, spec = tiny
    pcm = chirp(3.0, seed=21)
    half = len(pcm) // 2
    other, meeting = engine.open_stream(delay_ms=480), engine.open_stream(delay_ms=480)
    other.push(chirp(2.0, seed=20))
    meeting.push(pcm[:half])
    deadline = time.monotonic() + 60
    while meeting._state.pos < spec.n_left_pad_steps + 8:  # the meeting has stepped into its audio
        assert time.monotonic() < deadline, "the engine did not step the meeting"
        time.sleep(0.01)
    with engine.scheduler.cond:  # the engine thread waits: all three happen before its next round
        other.abort()
        newcomer = engine.open_stream(delay_ms=480)
        newcomer.abort()
    meeting.push(pcm[half:])
    got = [t.token_id for t in meeting.close_nowait().result(120).tokens]
    expected = R.until_eos(R.generate_tokens(model, processor, as_float(pcm), 480), spec.eos_id)
    assert got[: len(expected)] == expected
