"""pyannote's frame-level post-processing steps without Python loops over frames, windows and speakers.

After the two networks, `SpeakerDiarization.apply` counts speakers per frame (`speaker_count`), clusters,
rebuilds a frame-level diarization from the clustered windows (`reconstruct`, then `to_diarization`) and
turns frames into turns (`to_annotation`), the last two twice. pyannote writes them as loops: over
windows (`Inference.aggregate` builds a `Segment` and runs `nan_to_num` per 10 s window), over frames
(`to_diarization` picks the top speakers of each of the ~107,000 frames of 30 minutes one by one, and
`Binarize` walks every frame of every speaker), over (window, speaker) pairs (`reconstruct`). Here the
same arithmetic runs on whole arrays; the one loop left (overlap-add, one slice per window) keeps
pyannote's order of float additions, so every step returns exactly what pyannote's does.

Installed per pipeline instance, like `window_embeddings`; tests/reprocess/test_fast_steps.py compares
each step with pyannote's on the same inputs. Cases they were not checked for (time rounding switched
on in pyannote.core, hysteresis with offset above onset, a sliding window with an end) keep pyannote's code.
"""
import numpy as np

STEPS = ("speaker_count", "reconstruct", "to_diarization", "to_annotation")


def install(pipeline) -> bool:
    """Use these steps for this pipeline instance if it is pyannote's SpeakerDiarization; says whether it did."""
    try:
        from pyannote.audio.pipelines.speaker_diarization import SpeakerDiarization
    except ImportError:
        return False
    if not isinstance(pipeline, SpeakerDiarization):
        return False
    pipeline.speaker_count = speaker_count
    pipeline.to_annotation = to_annotation
    pipeline.to_diarization = to_diarization
    pipeline.reconstruct = reconstruct
    return True


def uninstall(pipeline) -> None:
    for name in STEPS:
        vars(pipeline).pop(name, None)


def aggregate(scores, frames, warm_up=(0.0, 0.0), epsilon: float = 1e-12, hamming: bool = False,
              missing: float = np.nan, skip_average: bool = False):
    """`Inference.aggregate`: overlap-add of (chunks, frames per chunk, classes) scores into (frames, classes).

    As pyannote, NaN scores count as missing and are set to 0 in `scores.data` itself."""
    import pyannote.core.segment as segment_module
    from pyannote.audio.core.inference import Inference
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    data = scores.data
    num_chunks, per_chunk, num_classes = data.shape
    chunks = scores.sliding_window
    if segment_module.AUTO_ROUND_TIME or np.isfinite(chunks.end):
        return Inference.aggregate(scores, frames, warm_up=warm_up, epsilon=epsilon, hamming=hamming, missing=missing, skip_average=skip_average)
    frames = SlidingWindow(start=chunks.start, duration=frames.duration, step=frames.step)

    window = np.hamming(per_chunk).reshape(-1, 1) if hamming else np.ones((per_chunk, 1))
    warm = np.ones((per_chunk, 1))
    warm[:round(warm_up[0] / chunks.duration * per_chunk)] = epsilon
    warm[per_chunk - round(warm_up[1] / chunks.duration * per_chunk):] = epsilon

    num_frames = frames.closest_frame(chunks.start + chunks.duration + (num_chunks - 1) * chunks.step + 0.5 * frames.duration) + 1
    output = np.zeros((num_frames, num_classes), dtype=np.float32)
    overlapping = np.zeros((num_frames, num_classes), dtype=np.float32)
    present = np.zeros((num_frames, num_classes), dtype=np.float32)

    mask = 1 - np.isnan(data)  # int64, as pyannote's, so that the products below are float64 as there
    np.nan_to_num(data, copy=False, nan=0.0)
    plain = not hamming and not warm_up[0] and not warm_up[1]  # every weight 1.0: products change nothing
    weighted = data if plain else data * mask * window * warm
    weights = None if skip_average else (mask.astype(np.float64) if plain else mask * window * warm)
    starts = _window_frames(chunks, frames, num_chunks)
    _overlap_add(output, weighted, starts)
    if weights is not None:
        _overlap_add(overlapping, weights, starts)
    seen = mask.astype(np.float32)
    for c, first in enumerate(starts.tolist()):
        np.maximum(present[first:first + per_chunk], seen[c], out=present[first:first + per_chunk])

    average = output if skip_average else output / np.maximum(overlapping, epsilon)
    average[present == 0.0] = missing
    return SlidingWindowFeature(average, frames)


def _window_frames(chunks, frames, num_chunks: int) -> np.ndarray:
    """Each window's first frame: `frames.closest_frame(chunks[c].start + 0.5 * frames.duration)`, same float operations."""
    starts = chunks.start + np.arange(num_chunks) * chunks.step
    return np.rint((starts + 0.5 * frames.duration - frames.start - 0.5 * frames.duration) / frames.step).astype(np.int64)


def _overlap_add(output: np.ndarray, windows: np.ndarray, starts: np.ndarray) -> None:
    """output[first:first + n] += windows[c] for each window c in order, added in float64 and stored in
    output's float32, as pyannote's `+=` of float64 products into float32 arrays: the same bits."""
    per_chunk = windows.shape[1]
    for c, first in enumerate(starts.tolist()):
        part = output[first:first + per_chunk]
        np.add(part, windows[c], out=part, dtype=np.float64, casting="same_kind")


def speaker_count(binarized_segmentations, frames, warm_up=(0.1, 0.1)):
    """`SpeakerDiarizationMixin.speaker_count`: (frames, 1) number of speakers talking."""
    from pyannote.audio.core.inference import Inference

    trimmed = Inference.trim(binarized_segmentations, warm_up=warm_up)
    count = aggregate(np.sum(trimmed, axis=-1, keepdims=True), frames, hamming=False, missing=0.0, skip_average=False)
    count.data = np.rint(count.data).astype(np.uint8)
    return count


def to_diarization(segmentations, count):
    """`SpeakerDiarizationMixin.to_diarization`: in each frame, the `count` speakers of highest activation."""
    activations = aggregate(segmentations, count.sliding_window, hamming=False, missing=0.0, skip_average=True)
    return _top_speakers(activations, count)


def _to_diarization(clustered: np.ndarray, chunks, count):
    """`to_diarization` of finite (chunks, frames, clusters) scores: aggregation without masks to keep."""
    import pyannote.core.segment as segment_module
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    if segment_module.AUTO_ROUND_TIME or np.isfinite(chunks.end):
        return to_diarization(SlidingWindowFeature(clustered, chunks), count)
    num_chunks, per_chunk, num_clusters = clustered.shape
    frames = SlidingWindow(start=chunks.start, duration=count.sliding_window.duration, step=count.sliding_window.step)
    num_frames = frames.closest_frame(chunks.start + chunks.duration + (num_chunks - 1) * chunks.step + 0.5 * frames.duration) + 1
    output = np.zeros((num_frames, num_clusters), dtype=np.float32)
    _overlap_add(output, clustered, _window_frames(chunks, frames, num_chunks))
    return _top_speakers(SlidingWindowFeature(output, frames), count)


def _top_speakers(activations, count):
    from pyannote.core import SlidingWindowFeature

    _, num_speakers = activations.data.shape
    most = np.max(count.data)
    if num_speakers < most:
        activations.data = np.pad(activations.data, ((0, 0), (0, most - num_speakers)))
    extent = activations.extent & count.extent
    activations = activations.crop(extent, return_data=False)
    count = count.crop(extent, return_data=False)

    order = np.argsort(-activations.data, axis=-1)  # the same call as pyannote's: ties broken the same way
    binary = np.zeros_like(activations.data)
    n = min(len(count.data), len(order))
    speakers = count.data[:n, 0].astype(np.int64)
    ranks = np.arange(order.shape[1]) < speakers[:, None]
    np.put_along_axis(binary[:n], order[:n], ranks.astype(binary.dtype), axis=1)
    return SlidingWindowFeature(binary, activations.sliding_window)


def reconstruct(segmentations, hard_clusters: np.ndarray, count):
    """`SpeakerDiarization.reconstruct`: each window's local speakers merged into their clusters (max of
    their activations), then `to_diarization`."""
    data = segmentations.data
    num_chunks, num_frames, local_speakers = data.shape
    num_clusters = int(np.max(hard_clusters)) + 1
    # pyannote fills a float64 array with NaN and lets aggregation mask them; missing entries and NaN
    # contribute nothing there, so here they are 0, in the scores' own precision (the same values).
    clustered = np.full((num_chunks, num_frames, num_clusters), -np.inf, dtype=np.promote_types(data.dtype, np.float32))
    for s in range(local_speakers):
        rows = np.flatnonzero(hard_clusters[:, s] >= 0)  # -2: inactive speaker, left out
        ks = hard_clusters[rows, s].astype(np.int64)
        clustered[rows, :, ks] = np.maximum(clustered[rows, :, ks], data[rows, :, s])  # NaN wins, as np.max
    clustered[~np.isfinite(clustered)] = 0.0
    return _to_diarization(clustered, segmentations.sliding_window, count)


def to_annotation(discrete_diarization, min_duration_on: float = 0.0, min_duration_off: float = 0.0):
    """`SpeakerDiarizationMixin.to_annotation`: frames to turns, through `binarize`."""
    return binarize(discrete_diarization, onset=0.5, offset=0.5, min_duration_on=min_duration_on, min_duration_off=min_duration_off)


def binarize(scores, onset: float = 0.5, offset: float | None = None, min_duration_on: float = 0.0,
             min_duration_off: float = 0.0, pad_onset: float = 0.0, pad_offset: float = 0.0):
    """`pyannote.audio.utils.signal.Binarize(...)(scores)`: hysteresis thresholding of (frames, classes) scores."""
    import pyannote.core.segment as segment_module
    from pyannote.audio.utils.signal import Binarize
    from pyannote.core import Annotation, Segment
    from pyannote.core.utils.generators import string_generator

    offset = offset or onset
    num_frames, _ = scores.data.shape
    frames = scores.sliding_window
    if segment_module.AUTO_ROUND_TIME or offset > onset or num_frames < 2 or np.isfinite(frames.end):
        return Binarize(onset=onset, offset=offset, min_duration_on=min_duration_on, min_duration_off=min_duration_off,
                        pad_onset=pad_onset, pad_offset=pad_offset)(scores)

    starts = frames.start + np.arange(num_frames) * frames.step
    middles = (0.5 * (starts + (starts + frames.duration))).tolist()  # Segment.middle of each frame
    active = Annotation()
    tracks = string_generator()
    for k, y in enumerate(scores.data.T):
        label = k if scores.labels is None else scores.labels[k]
        track = next(tracks)
        state = _hysteresis(y, onset, offset)
        change = np.flatnonzero(np.diff(state)) + 1  # first frame of each new state
        ons = change[state[change]].tolist()
        offs = change[~state[change]].tolist()
        if state[0]:
            ons.insert(0, 0)
        if state[-1]:
            offs.append(num_frames - 1)  # still active after the last frame: pyannote ends there
        for on, off in zip(ons, offs):
            active[Segment(middles[on] - pad_onset, middles[off] + pad_offset), track] = label

    if pad_offset > 0.0 or pad_onset > 0.0 or min_duration_off > 0.0:
        active = active.support(collar=min_duration_off)
    if min_duration_on > 0:
        for segment, track in list(active.itertracks()):
            if segment.duration < min_duration_on:
                del active[segment, track]
    return active


def _hysteresis(y: np.ndarray, onset: float, offset: float) -> np.ndarray:
    """Per-frame state of pyannote's loop: on above `onset`, off below `offset`, unchanged in between
    (and on NaN); the first frame is on only above `onset`."""
    decided = (y > onset) | (y < offset)
    decided[0] = True
    last = np.maximum.accumulate(np.where(decided, np.arange(len(y)), 0))
    return (y > onset)[last]
