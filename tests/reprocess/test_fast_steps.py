"""The array versions of pyannote's post-processing steps give exactly what pyannote's own functions give.

Inputs are built to reach every branch pyannote has: soft and binary scores, NaN frames (partial
stitching), scores of exactly 0.5, speakers left out of clustering (-2), counts above the number of
clusters, Hamming and warm-up weights, hysteresis, and the minimum on/off durations.
"""
from types import SimpleNamespace

import numpy as np
import pytest
from pyannote.audio.core.inference import Inference
from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
from pyannote.audio.utils.signal import Binarize
from pyannote.core import SlidingWindow, SlidingWindowFeature

from transcription.reprocess import fast_steps

# PyanNet's frames (segmentation-3.0) and 10 s windows every 2.5 s: window starts fall between frames.
FRAMES = SlidingWindow(start=0.0, duration=0.0619375, step=0.016875)
WINDOWS = SlidingWindow(start=0.0, duration=10.0, step=2.5)
PER_WINDOW = 589


def windows(rng, num_chunks=24, speakers=3, binary=True, nan=True):
    """(chunks, frames, speakers) scores of turns: runs of activity, some overlapping, some NaN."""
    data = np.zeros((num_chunks, PER_WINDOW, speakers), dtype=np.float32)
    for c in range(num_chunks):
        for s in range(speakers):
            for _ in range(rng.integers(0, 4)):
                start = rng.integers(0, PER_WINDOW)
                data[c, start:start + rng.integers(1, 200), s] = 1.0
    if not binary:
        data = np.clip(data * 0.7 + rng.random(data.shape).astype(np.float32) * 0.4, 0, 1)
        data[rng.random(data.shape) < 0.01] = 0.5  # exactly the threshold
    if nan:
        data[3, :40] = np.nan
        data[7, 500:, 1] = np.nan
    data[5, :, 2] = 0.0  # a silent local speaker
    return SlidingWindowFeature(data, WINDOWS)


def copy(feature):
    return SlidingWindowFeature(feature.data.copy(), feature.sliding_window, labels=feature.labels)


def same_feature(ours, theirs):
    np.testing.assert_array_equal(ours.data, theirs.data)
    assert ours.data.dtype == theirs.data.dtype
    window = lambda w: (w.start, w.duration, w.step, w.end)  # noqa: E731
    assert window(ours.sliding_window) == window(theirs.sliding_window)


@pytest.mark.parametrize("hamming,warm_up,skip_average,missing", [
    (False, (0.0, 0.0), True, 0.0), (False, (0.0, 0.0), False, 0.0), (True, (0.0, 0.0), False, np.nan),
    (True, (1.0, 0.5), False, np.nan), (False, (2.0, 2.0), True, 0.0)])
def test_aggregation_equals_pyannotes(hamming, warm_up, skip_average, missing):
    scores = windows(np.random.default_rng(0), binary=False)
    theirs_in, ours_in = copy(scores), copy(scores)
    theirs = Inference.aggregate(theirs_in, FRAMES, warm_up=warm_up, hamming=hamming, missing=missing, skip_average=skip_average)
    ours = fast_steps.aggregate(ours_in, FRAMES, warm_up=warm_up, hamming=hamming, missing=missing, skip_average=skip_average)
    same_feature(ours, theirs)
    np.testing.assert_array_equal(ours_in.data, theirs_in.data)  # NaN set to 0 in the input, as pyannote does
    assert np.isnan(scores.data).any() and not np.isnan(ours_in.data).any()


def test_speaker_count_equals_pyannotes():
    binary = windows(np.random.default_rng(1))
    for warm_up in ((0.0, 0.0), (0.1, 0.1)):
        theirs = SpeakerDiarization.speaker_count(copy(binary), FRAMES, warm_up=warm_up)
        same_feature(fast_steps.speaker_count(copy(binary), FRAMES, warm_up=warm_up), theirs)
        assert theirs.data.max() >= 2, "no overlapping speech: the test would not test counting"


@pytest.mark.parametrize("binary", [True, False])
def test_reconstruction_equals_pyannotes(binary):
    rng = np.random.default_rng(2)
    segmentations = windows(rng, binary=binary)
    count = SpeakerDiarization.speaker_count(windows(rng), FRAMES, warm_up=(0.0, 0.0))
    clusters = rng.integers(0, 4, size=(24, 3)).astype(np.int8)
    clusters[:, 1] = np.where(clusters[:, 0] == clusters[:, 1], (clusters[:, 1] + 1) % 4, clusters[:, 1])
    clusters[2, 0] = clusters[2, 2]  # two local speakers in one cluster: their maximum is taken
    clusters[5, 2] = -2               # silent speaker, left out
    clusters[9] = -2
    reference = SimpleNamespace(to_diarization=SpeakerDiarization.to_diarization)
    for cap in (3, 1, 6):  # with overlaps, exclusive, and more speakers per frame than clusters (padding)
        capped = SlidingWindowFeature(np.minimum(count.data, cap).astype(np.int8), count.sliding_window)
        if cap == 6:
            capped.data[100:120] = 6
        theirs = SpeakerDiarization.reconstruct(reference, copy(segmentations), clusters.copy(), capped)
        ours = fast_steps.reconstruct(copy(segmentations), clusters.copy(), capped)
        same_feature(ours, theirs)
        assert theirs.data.sum() > 0


def test_to_diarization_equals_pyannotes_on_soft_scores():
    rng = np.random.default_rng(3)
    scores = windows(rng, binary=False)
    count = SpeakerDiarization.speaker_count(windows(rng), FRAMES, warm_up=(0.0, 0.0))
    same_feature(fast_steps.to_diarization(copy(scores), count), SpeakerDiarization.to_diarization(copy(scores), count))


def tracks(annotation):
    return [(segment.start, segment.end, track, label) for segment, track, label in annotation.itertracks(yield_label=True)]


@pytest.mark.parametrize("options", [
    {"onset": 0.5}, {"onset": 0.6, "offset": 0.4}, {"onset": 0.5, "min_duration_off": 0.1},
    {"onset": 0.5, "min_duration_on": 0.2}, {"onset": 0.5, "pad_onset": 0.05, "pad_offset": 0.1}])
def test_binarisation_equals_pyannotes(options):
    rng = np.random.default_rng(4)
    frames = fast_steps.aggregate(windows(rng, binary=False), FRAMES, hamming=True)
    frames.data[:30, 0] = np.nan
    frames.data[-1, 1] = 1.0   # a turn starting on the last frame
    frames.data[-3:, 2] = 1.0  # a turn still on at the end
    frames.labels = None if options.get("pad_onset") else ["A", "B", "C"]
    theirs = Binarize(**options)(copy(frames))
    ours = fast_steps.binarize(copy(frames), **options)
    assert tracks(ours) == tracks(theirs)
    assert len(tracks(theirs)) > 20


def test_turns_from_frames_equal_pyannotes():
    discrete = SpeakerDiarization.reconstruct(
        SimpleNamespace(to_diarization=SpeakerDiarization.to_diarization), windows(np.random.default_rng(5)),
        np.array([[0, 1, 2]] * 24, dtype=np.int8), SpeakerDiarization.speaker_count(windows(np.random.default_rng(6)), FRAMES, warm_up=(0.0, 0.0)))
    for off in (0.0, 0.3):
        theirs = SpeakerDiarization.to_annotation(discrete, min_duration_off=off)
        assert tracks(fast_steps.to_annotation(discrete, min_duration_off=off)) == tracks(theirs)


def test_a_pipeline_gives_the_same_speakers_with_these_steps_and_lean_vbx(pyannote_dir, two_voices):
    import torch

    from transcription.reprocess import diarize, vbx_clustering

    _, pcm, _ = two_voices
    [pipeline] = diarize.load_pipelines(pyannote_dir, "cpu")
    assert all(name in vars(pipeline) for name in fast_steps.STEPS)
    audio = {"waveform": torch.from_numpy(pcm.astype(np.float32) / 32768)[None], "sample_rate": 16_000, "uri": "meeting"}
    ours = pipeline(dict(audio))
    fast_steps.uninstall(pipeline)
    vbx_clustering.uninstall(pipeline)
    try:
        theirs = pipeline(dict(audio))
    finally:
        fast_steps.install(pipeline)
        vbx_clustering.install(pipeline)
    assert tracks(ours.speaker_diarization) == tracks(theirs.speaker_diarization)
    assert tracks(ours.exclusive_speaker_diarization) == tracks(theirs.exclusive_speaker_diarization)
    assert tracks(theirs.speaker_diarization)
