"""Real speech for tests, made on the spot with espeak-ng and sox (nothing binary is committed)."""
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np


def make_speech_wav(path: Path, text: str, *, voice: str = "en", rate: int = 16_000, words_per_minute: int = 160) -> Path:
    """Speak `text` into a 16 kHz mono 16-bit WAV at `path`."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        raise RuntimeError("espeak-ng and sox are needed to make test speech (apt-get install espeak-ng sox)")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
        return np.frombuffer(frames, dtype=np.int16), w.getframerate()


def wav_duration_ms(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        return round(w.getnframes() * 1000 / w.getframerate())
