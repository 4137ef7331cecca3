"""Segments are sized so that a recording of any length fills one offline batch of the GPU."""
import numpy as np
import pytest

from transcription.engine import EngineOptions, offline
from transcription.reprocess.transcribe import MIN_SEGMENT_S, segment_plan


@pytest.mark.parametrize("hours", [0.25, 1.0, 2.0, 3.0, 3.5])
def test_a_recording_that_fits_one_batch_is_cut_into_at_most_a_batch_of_segments(hours):
    options = EngineOptions(offline_segment_s=60, offline_batch=256)
    seconds = int(hours * 3600)
    # Loudness that varies every 80 ms, so cuts land anywhere in the search window (the worst case).
    pcm = np.repeat(np.random.default_rng(1).integers(1, 3000, seconds * 16_000 // 1280), 1280).astype(np.int16)
    segment_s, search_s = segment_plan(options, seconds)
    cuts = offline.cut_points(pcm, segment_s, search_s)
    assert len(cuts) <= 256
    assert MIN_SEGMENT_S <= segment_s <= 60
    if hours >= 1:  # long enough to need more than the shortest segments: the batch is nearly full
        assert len(cuts) > 0.8 * 256, (segment_s, len(cuts))


def test_recordings_longer_than_a_batch_use_the_longest_segments():
    assert segment_plan(EngineOptions(offline_segment_s=60, offline_batch=64), 5 * 3600) == (60, 7)
    # A shortened decoder window caps segments at what it holds: (1056 - 80) steps of 80 ms, 4/5 of it.
    assert segment_plan(EngineOptions(offline_segment_s=62, offline_batch=64, text_window=1056), 5 * 3600)[0] == 62
    assert segment_plan(EngineOptions(offline_segment_s=62, offline_batch=64, text_window=1024), 5 * 3600)[0] == 60


def test_speaker_separation_gives_each_parallel_copy_about_two_chunks():
    from transcription.reprocess.diarize import chunk_seconds

    assert chunk_seconds(3 * 3600, 1800, 3) == 1800  # six 30-minute chunks, two per copy
    assert chunk_seconds(3600, 1800, 3) == 600  # not two 30-minute chunks that leave a copy idle
    assert chunk_seconds(3600, 1800, 1) == 1800
    assert chunk_seconds(100, 1800, 3) == 60  # never slivers
