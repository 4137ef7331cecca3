import shutil

import numpy as np
import pytest

from tests.speech import make_speech_wav, read_wav

SR = 16_000
GAP_S = 0.4
# Two espeak-ng voices taking turns; the reference speaker turns are known to the sample.
SCRIPT = [
    ("en+m3", "MALE", "Good morning everyone, the budget review starts now."),
    ("en+f3", "FEMALE", "Thank you. The hospital figures are ready for the board."),
    ("en+m3", "MALE", "Please send the cardiology numbers before Friday."),
    ("en+f3", "FEMALE", "I will send them tomorrow morning."),
]


def _need_espeak():
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.skip("espeak-ng and sox are needed for speech fixtures (apt-get install espeak-ng sox)")


def build_meeting(folder, script=SCRIPT, repeat: int = 1):
    """(int16 pcm, reference turns [(start_ms, end_ms, speaker)]) for the script spoken `repeat` times."""
    _need_espeak()
    pieces, turns, at = [], [], 0
    gap = np.zeros(int(GAP_S * SR), dtype=np.int16)
    for i, (voice, speaker, text) in enumerate(script):
        pcm, rate = read_wav(make_speech_wav(folder / f"line{i}.wav", text, voice=voice))
        assert rate == SR
        pieces.append((pcm, speaker))
    pcm_parts = []
    for _ in range(repeat):
        for pcm, speaker in pieces:
            turns.append((at * 1000 // SR, (at + len(pcm)) * 1000 // SR, speaker))
            pcm_parts += [pcm, gap]
            at += len(pcm) + len(gap)
    return np.concatenate(pcm_parts), turns


def write_wav(path, pcm: np.ndarray) -> str:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())
    return str(path)


@pytest.fixture(scope="session")
def two_voices(tmp_path_factory):
    """A short meeting of two espeak voices: (wav path, pcm, reference turns)."""
    folder = tmp_path_factory.mktemp("two-voices")
    pcm, turns = build_meeting(folder)
    return write_wav(folder / "meeting.wav", pcm), pcm, turns


@pytest.fixture(scope="session")
def pyannote_dir(tmp_path_factory):
    """A random-weight pyannote pipeline folder (real architectures), loaded by the real from_pretrained."""
    from tests.reprocess.pyannote_models import build_pyannote_dir

    return str(build_pyannote_dir(tmp_path_factory.mktemp("pyannote"), segmentation_step=1.0))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """The tiny model's engine with short offline segments, so a minute of audio is several segments."""
    import torch

    from transcription.engine import Engine, EngineOptions, loading

    torch.manual_seed(0)
    model, spec = loading.load(tiny_model_dir, torch.device("cpu"), torch.float32)
    engine = Engine(model, spec, EngineOptions(device="cpu", max_streams=8, offline_segment_s=8, offline_search_s=2))
    yield engine
    engine.shutdown()


@pytest.fixture
def reprocess_settings(settings, tiny_model_dir, pyannote_dir):
    """The tiny speech model and the random pyannote pipeline as the site's models."""
    from transcription import engine_host

    settings.ASR_MODEL_DIR = str(tiny_model_dir)
    settings.ASR_OFFLINE_SEGMENT_S = 8
    settings.ASR_MAX_STREAMS = 8
    settings.ASR_DEVICE = "cpu"
    settings.DIARIZATION_DIR = pyannote_dir
    settings.DIARIZATION_DEVICE = "cpu"
    engine_host.reset()
    yield settings
    engine_host.reset()


def run_job(job_id: int) -> None:
    """The chain's four tasks, called in this process in order (what a worker would do)."""
    from transcription import tasks

    for task in (tasks.reprocess_decode, tasks.reprocess_transcribe, tasks.reprocess_diarize, tasks.reprocess_store):
        task(job_id)
