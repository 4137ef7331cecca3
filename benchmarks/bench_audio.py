"""Test audio for the benchmarks, with numpy alone: the system benchmark's client processes import it
without torch."""
import numpy as np

SR = 16_000


def chirp(seconds: float, seed: int) -> np.ndarray:
    """A speech-like test signal, int16 at 16 kHz: a gliding tone with noise, switched on and off like phrases."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * (150 + 50 * seed) * t * (1 + t / seconds)) + 0.02 * rng.standard_normal(len(t))
    x *= np.clip(np.sin(2 * np.pi * 0.7 * t + seed) * 3, 0, 1)
    return np.round(x * 32767).astype(np.int16)
