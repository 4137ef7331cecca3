import numpy as np
import pytest
from django.utils import timezone

from meetings.models import Speaker
from tests.factories import meeting_with_transcript
from tests.reprocess.conftest import pyannote_dir, two_voices  # noqa: F401  (session fixtures shared with reprocessing)
from voices.models import Person, Voiceprint

DIM = 256
VERSION = "pyannote-test 0123456789ab (pyannote.audio 4.0)"


def identity(seed: int) -> np.ndarray:
    """A random unit vector: the 'true voice' of one person. Two seeds are nearly orthogonal in 256 dims."""
    vector = np.random.default_rng(seed).standard_normal(DIM)
    return vector / np.linalg.norm(vector)


def heard(voice: np.ndarray, *, noise: float, seed: int = 99) -> np.ndarray:
    """The voice as a new meeting's embedding sees it: the identity plus noise of the given size."""
    extra = np.random.default_rng(seed).standard_normal(DIM)
    vector = voice + noise * extra / np.linalg.norm(extra)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def enrolled(*, meeting, vector, user=None, person_name="", version=VERSION, by=None, **fields) -> Voiceprint:
    """A ready voiceprint as the GPU task leaves it, without running a model."""
    holder = {"user": user} if user is not None else {"person": Person.objects.get_or_create(name=person_name)[0]}
    name = (user.get_full_name() or user.username) if user is not None else person_name
    by = by or meeting.owner
    return Voiceprint.objects.create(
        **holder, holder_name=name, status=Voiceprint.Status.READY, embedding=[float(x) for x in vector], pipeline_version=version,
        source_meeting=meeting, source_label="SPEAKER_00", source_spans=[[0, 20_000]], speech_ms=20_000,
        enrolled_by=by, consent_confirmed_by=by, consent_confirmed_name=by.username, consent_at=timezone.now(), **fields)


@pytest.fixture
def ward_round(owner):
    """The owner's earlier meeting, where voices are enrolled from."""
    return meeting_with_transcript(owner, title="Ward round, Monday")


@pytest.fixture
def next_round(owner):
    """The owner's next meeting with two separated speakers, SPEAKER_00 and SPEAKER_01."""
    return meeting_with_transcript(owner, title="Ward round, Tuesday")


def speaker(meeting, label) -> Speaker:
    return meeting.speakers.get(label=label)


LABELS = {"MALE": "SPEAKER_00", "FEMALE": "SPEAKER_01"}


def meeting_from_reference(owner, wav_path, turns, *, title="Budget review"):
    """A meeting whose transcript follows the espeak voices' known turns, with the audio attached."""
    from tests.factories import attach_recording

    lines = [(LABELS[who], start, end, f"line {i} spoken by {who.lower()}") for i, (start, end, who) in enumerate(turns)]
    meeting = meeting_with_transcript(owner, title=title, lines=lines)
    attach_recording(meeting, wav_path)
    return meeting


@pytest.fixture
def voice_settings(settings, pyannote_dir):
    settings.DIARIZATION_DIR = pyannote_dir
    settings.DIARIZATION_DEVICE = "cpu"
    settings.VOICEPRINT_MIN_SPEECH_S = 4
    return settings
