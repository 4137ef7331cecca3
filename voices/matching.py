"""Which enrolled voice, if any, each speaker of a meeting is: cosine similarity against a threshold.

Pure functions over vectors, so the rule can be tested with embeddings of known identity.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Match:
    label: str
    voiceprint_id: int
    score: float


def unit(vector) -> np.ndarray | None:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array)) if array.size else 0.0
    return array / norm if norm > 0 and np.isfinite(norm) else None


def match_speakers(speakers: dict[str, np.ndarray], voiceprints: dict[int, np.ndarray], threshold: float,
                   holders: dict[int, str] | None = None) -> list[Match]:
    """The best pairs scoring at least `threshold`, each speaker and each person (`holders`: voiceprint
    id -> person key; a person may have several voiceprints) used at most once.

    Pairs are taken best first, so two speakers close to one voice do not both get its name: the
    closer one does, and the other keeps its label (two people never share a name by this rule).
    Vectors of another dimension (another embedding model) are never compared.
    """
    pairs = []
    for label, vector in speakers.items():
        a = unit(vector)
        if a is None:
            continue
        for vp_id, enrolled in voiceprints.items():
            b = unit(enrolled)
            if b is not None and b.shape == a.shape:
                pairs.append((float(a @ b), label, vp_id))
    taken_labels, taken_voices, matches = set(), set(), []
    for score, label, vp_id in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
        if score < threshold:
            break
        holder = (holders or {}).get(vp_id, vp_id)
        if label in taken_labels or holder in taken_voices:
            continue
        taken_labels.add(label)
        taken_voices.add(holder)
        matches.append(Match(label, vp_id, round(score, 4)))
    return matches
