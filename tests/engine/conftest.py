import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from .tiny_model import build_tiny_model_dir  # noqa: E402

SR = 16_000


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("voxtral-tiny"), seed=0)


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """(model, processor, spec) loaded the way the engine loads them."""
    from transformers import VoxtralRealtimeProcessor

    from transcription.engine import loading

    torch.manual_seed(0)
    model, spec = loading.load(tiny_dir, torch.device("cpu"), torch.float32)
    processor = VoxtralRealtimeProcessor.from_pretrained(tiny_dir, local_files_only=True)
    return model, processor, spec


@pytest.fixture(scope="session")
def engine(tiny):
    from transcription.engine import Engine, EngineOptions

    model, _, spec = tiny
    eng = Engine(model, spec, EngineOptions(device="cpu", max_streams=6, offline_segment_s=4, offline_search_s=1))
    yield eng
    eng.shutdown()


def chirp(seconds: float, f0: float = 200.0, seed: int = 0) -> np.ndarray:
    """A sweep plus a little noise, as int16: audio that moves the tiny model's outputs around."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 2 * t / max(seconds, 1e-3))) + 0.02 * rng.standard_normal(len(t))
    x *= np.clip(np.sin(2 * np.pi * 0.7 * t + seed) * 3, 0, 1)  # on/off like syllables
    return np.round(x * 32767).astype(np.int16)


def as_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """Real speech from espeak-ng (made on the spot, never committed), as int16 at 16 kHz."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.skip("espeak-ng and sox are needed for speech fixtures (apt-get install espeak-ng sox)")
    from tests.speech import make_speech_wav, read_wav

    path = make_speech_wav(tmp_path_factory.mktemp("speech") / "speech.wav",
                           "The quarterly budget review starts at nine. Please bring the figures.")
    pcm, rate = read_wav(path)
    assert rate == SR
    return pcm
