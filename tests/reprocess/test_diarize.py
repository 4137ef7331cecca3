"""Speaker separation through the real `Pipeline.from_pretrained(<local folder>)` with random weights.

Random weights make the speakers it finds meaningless, so these tests check the plumbing: loading
offline, chunking long audio, labels across chunks, progress and turns inside the recording.
Accuracy of the alignment itself is tested with a reference diarization in test_align.py.
"""
from types import SimpleNamespace

import numpy as np
from pyannote.core import Annotation, Segment

from transcription.reprocess import diarize


def test_an_installed_folder_is_recognised_and_versioned(pyannote_dir, tmp_path):
    assert diarize.is_installed(pyannote_dir)
    assert not diarize.is_installed(str(tmp_path)) and not diarize.is_installed("")
    assert "pyannote.audio 4" in diarize.pipeline_version(pyannote_dir)


def test_random_weight_pipeline_separates_a_recording_in_chunks(pyannote_dir, two_voices):
    _, pcm, _ = two_voices
    pipeline = diarize.load_pipeline(pyannote_dir, "cpu")
    seen = []
    turns = diarize.diarize_pcm(pipeline, pcm, chunk_s=7, on_progress=seen.append)  # two chunks
    duration_ms = len(pcm) * 1000 // 16_000
    assert turns, "the random pipeline found no speech at all"
    assert all(0 <= t.start_ms < t.end_ms <= duration_ms + 10 for t in turns)
    assert any(t.start_ms >= 7000 for t in turns), "the second chunk's turns are missing or not shifted"
    assert all(t.speaker.startswith("SPEAKER_") for t in turns)
    assert seen[-1] == 1.0 and seen == sorted(seen)


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
