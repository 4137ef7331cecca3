"""Offline prefill plus decode gives the streaming path's tokens exactly (tiny model, CPU, float32).

The tiny model's windows are short (decoder 24 steps, encoder 40 frames), so the sliding-window masks
of both the encoder's chunked prefill and the decoder's cache are exercised, not only causal ones.
"""
import numpy as np
import pytest

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
