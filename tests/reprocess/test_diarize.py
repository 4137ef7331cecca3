"""Speaker separation through the real `Pipeline.from_pretrained(<local folder>)` with random weights.

Random weights make the speakers it finds meaningless, so these tests check the plumbing: loading
offline, chunking long audio, labels across chunks, progress and turns inside the recording.
Accuracy of the alignment itself is tested with a reference diarization in test_align.py.
"""
from types import SimpleNamespace

import numpy as np
import pytest
from pyannote.core import Annotation, Segment

from transcription.reprocess import diarize


def test_an_installed_folder_is_recognised_and_versioned(pyannote_dir, tmp_path):
    assert diarize.is_installed(pyannote_dir)
    assert not diarize.is_installed(str(tmp_path)) and not diarize.is_installed("")
    assert "pyannote.audio 4" in diarize.pipeline_version(pyannote_dir)


def test_random_weight_pipeline_separates_a_recording_in_chunks(pyannote_dir, two_voices):
    _, pcm, _ = two_voices
    pipelines = diarize.load_pipelines(pyannote_dir, "cpu")
    seen = []
    turns = diarize.diarize_pcm(pipelines, pcm, chunk_s=7, on_progress=seen.append)  # two chunks
    duration_ms = len(pcm) * 1000 // 16_000
    assert turns, "the random pipeline found no speech at all"
    assert all(0 <= t.start_ms < t.end_ms <= duration_ms + 10 for t in turns)
    assert any(t.start_ms >= 7000 for t in turns), "the second chunk's turns are missing or not shifted"
    assert all(t.speaker.startswith("SPEAKER_") for t in turns)
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_chunks_separated_side_by_side_give_the_same_speakers_as_one_at_a_time(pyannote_dir, two_voices):
    _, pcm, _ = two_voices
    one = diarize.diarize_pcm(diarize.load_pipelines(pyannote_dir, "cpu"), pcm, chunk_s=7)
    seen = []
    two = diarize.diarize_pcm(diarize.load_pipelines(pyannote_dir, "cpu", copies=2), pcm, chunk_s=7, on_progress=seen.append)
    assert two == one
    assert seen[-1] == 1.0 and seen == sorted(seen)


class Counted:
    """A pipeline that counts the chunks it is given, and can fail on one of them."""

    def __init__(self, pipeline, fail_on: int | None = None):
        self.pipeline, self.fail_on, self.calls = pipeline, fail_on, 0

    def __call__(self, audio, hook=None):
        self.calls += 1
        if self.calls == self.fail_on:
            raise ValueError("this chunk is broken")
        return self.pipeline(audio, hook=hook)


def test_a_cancelled_job_stops_separating_without_running_every_chunk(pyannote_dir):
    [pipeline] = diarize.load_pipelines(pyannote_dir, "cpu")
    counted = Counted(pipeline)
    pcm = (np.random.default_rng(2).standard_normal(16_000 * 60) * 3000).astype(np.int16)  # 20 chunks of 3 s

    def cancel(fraction):
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        diarize.diarize_pcm([counted], pcm, chunk_s=3, on_progress=cancel)
    assert counted.calls < 20


def test_a_failing_chunk_reports_its_own_error(pyannote_dir):
    pipelines = diarize.load_pipelines(pyannote_dir, "cpu", copies=2)
    counted = [Counted(pipelines[0], fail_on=2), Counted(pipelines[1])]
    pcm = (np.random.default_rng(3).standard_normal(16_000 * 30) * 3000).astype(np.int16)
    with pytest.raises(ValueError, match="this chunk is broken"):
        diarize.diarize_pcm(counted, pcm, chunk_s=3)


def test_window_embeddings_equal_pyannotes_own(pyannote_dir):
    """The network once per window, pooled per speaker, gives pyannote's per-(window, speaker) embeddings,
    including its rules for overlapped speech, speakers with too little clean speech, and NaN frames."""
    import torch
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
    from pyannote.core import SlidingWindowFeature

    [pipeline] = diarize.load_pipelines(pyannote_dir, "cpu", batch_size=2)  # 2 windows per call: the last batch is short
    assert diarize.window_embeddings.applies_to(pipeline)
    rng = np.random.default_rng(1)
    audio = {"waveform": torch.from_numpy((rng.standard_normal(16_000 * 35) * 0.1).astype(np.float32))[None],
             "sample_rate": 16_000, "uri": "noise"}
    window = pipeline.get_segmentations(audio).sliding_window
    frames = pipeline._segmentation.model.num_frames(16_000 * 10)
    data = np.zeros((5, frames, 3), dtype=np.float32)  # 5 windows, the last past the end (zero padded)
    data[0, :, 0] = 1
    data[0, frames // 2:, 1] = 1                 # overlaps speaker 0 for its whole turn: falls back to all its frames
    data[1, :frames // 3, 0] = 1
    data[1, frames // 3:, 2] = 1
    data[1, frames // 3 - 5:frames // 3 + 5, 0] = 1  # a short overlap, left out when excluding overlap
    data[2, :, 1] = 1
    data[2, :40, :] = np.nan                     # partial stitching
    data[3, ::2, 2] = 1
    data[4, :frames // 4, 0] = 1                 # speakers 1 and 2 silent
    segmentation = SlidingWindowFeature(data, window)
    for exclude in (True, False):
        theirs = SpeakerDiarization.get_embeddings(pipeline, audio, segmentation, exclude_overlap=exclude)
        ours = pipeline.get_embeddings(audio, segmentation, exclude_overlap=exclude)
        assert ours.shape == theirs.shape == (5, 3, pipeline._embedding.dimension)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5, equal_nan=True)
        assert np.isfinite(ours[0]).all()
        assert not np.allclose(ours[0, 0], ours[0, 1]), "the speakers' masks were not applied"


def _chunk(labels_embeddings: dict[str, list[float]], seconds: float = 5.0):
    annotation = Annotation()
    for i, label in enumerate(labels_embeddings):
        annotation[Segment(i * seconds, (i + 1) * seconds)] = label
    return SimpleNamespace(speaker_diarization=annotation, exclusive_speaker_diarization=annotation,
                           speaker_embeddings=np.array(list(labels_embeddings.values()), dtype=float))


def test_speakers_are_matched_across_chunks_by_voice():
    linker = diarize.SpeakerLinker()
    first = linker.add_chunk(_chunk({"SPEAKER_00": [1, 0, 0], "SPEAKER_01": [0, 1, 0]}), offset_ms=0)
    second = linker.add_chunk(_chunk({"SPEAKER_00": [0, 0.9, 0.1], "SPEAKER_01": [0, 0, 1]}), offset_ms=60_000)
    assert [t.speaker for t in first] == ["SPEAKER_00", "SPEAKER_01"]
    # The second chunk's first voice is the first chunk's second; its other voice is new.
    assert [(t.speaker, t.start_ms) for t in second] == [("SPEAKER_01", 60_000), ("SPEAKER_02", 65_000)]


def test_a_voice_without_an_embedding_is_kept_apart():
    linker = diarize.SpeakerLinker()
    linker.add_chunk(_chunk({"A": [1, 0]}), 0)
    turns = linker.add_chunk(_chunk({"B": [np.nan, np.nan]}), 10_000)
    assert [t.speaker for t in turns] == ["SPEAKER_01"]
