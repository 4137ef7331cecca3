"""Speaker embeddings for pyannote's diarization with the embedding network run once per window.

pyannote's `SpeakerDiarization.get_embeddings` embeds every (window, local speaker) pair: with three
local speakers per 10 s window it crops, copies and runs the ResNet on the same audio three times, and
only the statistics pooling at the end differs (it is weighted by each speaker's mask). WeSpeaker models
expose the two halves (`forward_frames`, `forward_embedding`), so here the network runs once per window
and only the pooling runs per speaker: the same embeddings for about a third of the GPU work, and the
windows are cut on the device from the recording sent once, instead of cropped, padded and stacked one
by one on the host.

Used only for what it was checked against (pyannote.audio's own WeSpeaker models on in-memory mono audio
at the model's sample rate); anything else keeps pyannote's own method. tests/reprocess/test_diarize.py
compares the two.
"""
import math
import warnings
from functools import partial

import numpy as np


def install(pipeline) -> bool:
    """Use window embeddings for this pipeline instance if its embedding model allows; says whether it did."""
    if not applies_to(pipeline):
        return False
    pipeline.get_embeddings = partial(window_embeddings, pipeline)
    return True


def applies_to(pipeline) -> bool:
    try:
        from pyannote.audio.models.embedding.wespeaker import BaseWeSpeakerResNet
        from pyannote.audio.pipelines.speaker_verification import PyannoteAudioPretrainedSpeakerEmbedding
    except ImportError:
        return False
    embedding = getattr(pipeline, "_embedding", None)
    return isinstance(embedding, PyannoteAudioPretrainedSpeakerEmbedding) and isinstance(embedding.model_, BaseWeSpeakerResNet)


def speaker_masks(data: np.ndarray, exclude_overlap: bool, min_num_frames: int) -> np.ndarray:
    """(chunks, frames, speakers) binarised segmentation -> (chunks, speakers, frames) pooling weights.

    As pyannote: NaN (partial stitching) counts as silence; with `exclude_overlap`, frames where two or more
    speakers talk are left out unless that leaves a speaker too few frames for an embedding."""
    masks = np.nan_to_num(data, nan=0.0).astype(np.float32)
    if exclude_overlap:
        clean = masks * (np.sum(data, axis=2, keepdims=True) < 2)  # NaN frames sum to NaN: not clean
        enough = clean.sum(axis=1, keepdims=True) > min_num_frames
        masks = np.where(enough, clean, masks).astype(np.float32)
    return np.ascontiguousarray(masks.transpose(0, 2, 1))


def window_embeddings(pipeline, file, binary_segmentations, exclude_overlap: bool = False, hook=None) -> np.ndarray:
    """Drop-in for `SpeakerDiarization.get_embeddings`: (chunks, local speakers, dimension) embeddings."""
    import torch
    from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization

    embedding = pipeline._embedding
    waveform, sample_rate = file.get("waveform"), file.get("sample_rate")
    if pipeline.training or waveform is None or waveform.shape[0] != 1 or sample_rate != embedding.sample_rate:
        return SpeakerDiarization.get_embeddings(pipeline, file, binary_segmentations, exclude_overlap=exclude_overlap, hook=hook)

    window = binary_segmentations.sliding_window
    num_chunks, num_frames, num_speakers = binary_segmentations.data.shape
    min_num_frames = -1
    if exclude_overlap:
        min_num_frames = math.ceil(num_frames * embedding.min_num_samples / (window.duration * sample_rate))
    masks = speaker_masks(binary_segmentations.data, exclude_overlap, min_num_frames)

    audio, model, device = pipeline._audio, embedding.model_, embedding.device
    total = waveform.shape[1]
    starts = [audio.get_num_samples(window[c].start, sample_rate) for c in range(num_chunks)]
    length = audio.get_num_samples(window[0].end, sample_rate) - starts[0]
    # The recording goes to the device once, zero padded where windows run past either end (as pyannote's
    # crop pads), and each batch is cut from it there: windows overlap ten times over, so cutting them
    # on the host would copy (and send) every sample ten times.
    before = max(0, -min(starts, default=0))
    after = max(0, max(starts, default=0) + length - total)
    padded = torch.nn.functional.pad(waveform[0], (before, after)).to(device)
    per_batch = max(1, pipeline.embedding_batch_size)
    batch_count = math.ceil(num_chunks / per_batch)
    out = np.empty((num_chunks, num_speakers, embedding.dimension), dtype=np.float32)
    if hook is not None:
        hook("embeddings", None, total=batch_count, completed=0)
    for i, first in enumerate(range(0, num_chunks, per_batch), 1):
        chunks = range(first, min(first + per_batch, num_chunks))
        batch = torch.stack([padded[before + starts[c]:before + starts[c] + length] for c in chunks])[:, None]
        weights = torch.from_numpy(masks[first:first + len(chunks)])
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pooling warns about speakers with too few frames, as in pyannote's own call
            frames = model.forward_frames(batch)
            weights = weights.to(device)
            per_speaker = [model.forward_embedding(frames, weights=weights[:, s]) for s in range(num_speakers)]
            out[first:first + len(chunks)] = torch.stack(per_speaker, dim=1).float().cpu().numpy()
        if hook is not None:
            hook("embeddings", None, total=batch_count, completed=i)
    return out
