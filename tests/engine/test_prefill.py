"""Offline prefill plus decode gives the streaming path's tokens exactly (tiny model, CPU, float32).

The tiny model's windows are short (decoder 24 steps, encoder 40 frames), so the sliding-window masks
of both the encoder's chunked prefill and the decoder's cache are exercised, not only causal ones.
"""
import numpy as np
import pytest
import torch

from transcription.engine import audio as A
from transcription.engine import offline, offline_batch, prefill

from .conftest import chirp


def streaming(engine, pcms, delay_ms):
    """Each piece as its own live stream through the engine's step (the reference)."""
    return offline.transcribe_many(engine, pcms, delay_ms, segment_s=3600, search_s=1)


@pytest.mark.parametrize("delay_ms", [80, 960, 2400])
def test_prefill_tokens_equal_the_streaming_path(engine, delay_ms, monkeypatch):
    monkeypatch.setattr(prefill, "QUERY_CHUNK", 64)  # several query chunks per segment
    monkeypatch.setattr(prefill, "ENCODE_BATCH", 2)  # several encoder passes per batch
    monkeypatch.setattr(offline_batch, "batch_size", lambda engine, steps: 3)  # several decoder batches
    pcms = [chirp(s, seed=20 + i) for i, s in enumerate([3.1, 0.0, 1.37, 4.0, 0.5, 2.2, 0.08])]
    expected = streaming(engine, pcms, delay_ms)
    got = offline_batch.transcribe_segments(engine, [p.astype(np.float32) / 32768.0 for p in pcms], delay_ms)
    assert [[t.token_id for t in g.tokens] for g in got] == [[t.token_id for t in e.tokens] for e in expected]
    assert got == expected  # text, token times and durations too
    assert sum(len(set(t.token_id for t in g.tokens)) for g in got) > 20  # the audio steered the outputs


def test_engine_transcribe_uses_prefill_and_matches_streams(engine):
    """A recording cut into segments: same transcript as the old slot-by-slot offline mode."""
    pcm = np.concatenate([chirp(5.0, seed=31), chirp(6.5, seed=32)])
    o = engine.options
    expected = offline.transcribe_many(engine, [pcm], 960, o.offline_segment_s, o.offline_search_s)[0]
    fractions = []
    got = engine.transcribe_many([pcm], 960, on_progress=fractions.append)[0]
    assert got == expected
    assert len(got.tokens) > 100 and got.text
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_without_the_prompt_prefix_every_prompt_position_is_stepped_and_tokens_still_equal(engine, monkeypatch):
    """Engines started without the prefix (or with fp8 rings) step the whole prompt from position 0."""
    pf = offline_batch._prefill(engine)
    assert pf.prefix is not None  # the tiny engine has one: the test above covers the copied start
    monkeypatch.setattr(pf, "prefix", None)
    pcms = [chirp(s, seed=40 + i) for i, s in enumerate([2.3, 0.7, 3.6])]
    expected = streaming(engine, pcms, 960)
    got = offline_batch.transcribe_segments(engine, [p.astype(np.float32) / 32768.0 for p in pcms], 960)
    assert got == expected


def test_mel_frames_of_a_padded_signal_are_the_live_steps_frames(engine):
    """Step k's 8 mel frames are frames 8k..8k+7 of the segment's padded signal, as the live step computes
    them from its own 1,520-sample window."""
    spec, logmel = engine.spec, engine.scheduler.logmel
    pcms = [chirp(1.3, seed=50).astype(np.float32) / 32768.0, chirp(0.4, seed=51).astype(np.float32) / 32768.0]
    steps = max(prefill.positions(spec, len(p), 6) for p in pcms)
    signals = prefill.padded_signals(spec, pcms, steps)
    frames = logmel.frames(torch.from_numpy(signals))  # (2, MELS, 8 steps)
    assert frames.shape[-1] == 8 * steps
    for row, signal in enumerate(signals):
        windows = torch.from_numpy(signal).unfold(0, A.STEP_WINDOW, A.STEP_SAMPLES)[:steps]
        per_step = logmel(windows.contiguous())  # (steps, MELS, 8)
        torch.testing.assert_close(frames[row].reshape(-1, steps, 8).permute(1, 0, 2), per_step, rtol=1e-6, atol=1e-6)
    first_audio_step = spec.n_left_pad_steps
    assert signals[0, A.LOOK_BACK + first_audio_step * A.STEP_SAMPLES] == pcms[0][0]
