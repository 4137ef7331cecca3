"""A decoder ring shortened to fit offline segments gives the same words as the model's own ring."""
import numpy as np
import torch

from tests.engine.tiny_model import build_tiny_model_dir
from transcription.engine import Engine, EngineOptions, loading
from transcription.reprocess.transcribe import RING_MARGIN_STEPS, transcribe_pcm


def engine_for(model_dir, **options):
    torch.manual_seed(0)
    model, spec = loading.load(model_dir, torch.device("cpu"), torch.float32)
    return Engine(model, spec, EngineOptions(device="cpu", max_streams=4, offline_segment_s=60, **options))


def test_a_ring_that_holds_each_segment_changes_no_word(tmp_path, two_voices):
    _, pcm, _ = two_voices
    model_dir = build_tiny_model_dir(tmp_path / "tiny", seed=0, text_window=512)
    full, short = engine_for(model_dir), engine_for(model_dir, text_window=RING_MARGIN_STEPS + 5 * 1000 // 80 + 13)
    try:
        assert short.pool.shape.text_window < full.pool.shape.text_window
        four = np.ascontiguousarray(pcm[: 16_000 * 4])  # one segment, shorter than either ring
        assert transcribe_pcm(short, four, 960) == transcribe_pcm(full, four, 960)
        clip = np.ascontiguousarray(pcm[: 16_000 * 12])
        words_full = transcribe_pcm(full, clip, 960)  # one 12 s stream in a 512-step ring
        words_short = transcribe_pcm(short, clip, 960)  # cut into ~4 s segments that fit the short ring
        assert words_short and max(w.end_ms for w in words_short) > 10_000
        # Cut points change the text near the cuts; a segment's own words must match the uncut run's there.
        assert len(words_short) > 0.5 * len(words_full)
        ref = transcribe_pcm(full, np.ascontiguousarray(clip[: 16_000 * 3]), 960)
        first = [w for w in words_short if w.end_ms <= 3000]
        assert [w.text for w in first][:5] == [w.text for w in ref][:5]
    finally:
        full.shutdown()
        short.shutdown()
