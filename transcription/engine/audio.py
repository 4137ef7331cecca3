"""Audio constants and PCM helpers, with the arithmetic that ties 16 kHz samples to model steps.

The model takes one step per 80 ms of audio. Each step consumes 8 log-mel frames (hop 160, window 400)
computed exactly like `VoxtralRealtimeFeatureExtractor` does over the whole recording with `center=True`:
mel frame j is centred on sample 160*j, so it reads samples [160*j - 200, 160*j + 200).
"""
import numpy as np
import torch

from .errors import InvalidAudio, InvalidDelay

SAMPLE_RATE = 16_000
STEP_MS = 80
STEP_SAMPLES = SAMPLE_RATE * STEP_MS // 1000  # 1280 samples per 80 ms step
HOP = 160
WINDOW = 400  # also n_fft
MELS = 128
MEL_FRAMES_PER_STEP = STEP_SAMPLES // HOP  # 8
LOOK_BACK = WINDOW // 2  # 200 samples before the step: the first centred frame starts there
LOOK_AHEAD = (MEL_FRAMES_PER_STEP - 1) * HOP + WINDOW // 2 - STEP_SAMPLES  # 40 samples (2.5 ms) past the step
STEP_WINDOW = LOOK_BACK + STEP_SAMPLES + LOOK_AHEAD  # 1520 samples feed one step's 8 mel frames

MIN_DELAY_MS = 80
MAX_DELAY_MS = 2400
LOG_MEL_FLOOR_RANGE = 8.0  # log10 units below the global maximum that survive, as in the extractor


def delay_steps(delay_ms: int) -> int:
    """Validate a caption delay and return it in model steps (480 ms -> 6)."""
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int):
        raise InvalidDelay(f"The caption delay must be a whole number of milliseconds, got {delay_ms!r}.")
    if not MIN_DELAY_MS <= delay_ms <= MAX_DELAY_MS or delay_ms % STEP_MS:
        raise InvalidDelay(
            f"The caption delay must be between {MIN_DELAY_MS} and {MAX_DELAY_MS} ms in steps of {STEP_MS} ms; "
            f"got {delay_ms} ms."
        )
    return delay_ms // STEP_MS


def to_float32(pcm) -> np.ndarray:
    """16 kHz mono PCM as float32 in [-1, 1): int16 is scaled by 1/32768, float32 is taken as is."""
    if not isinstance(pcm, np.ndarray):
        raise InvalidAudio(f"Audio must be a numpy array of int16 or float32 samples, got {type(pcm).__name__}.")
    if pcm.ndim != 1:
        raise InvalidAudio(f"Audio must be mono (one dimension), got shape {pcm.shape}.")
    if pcm.dtype == np.int16:
        return pcm.astype(np.float32) / 32768.0
    if pcm.dtype == np.float32:
        return pcm
    raise InvalidAudio(f"Audio samples must be int16 or float32, got {pcm.dtype}.")


class LogMel:
    """Log-mel frames for many steps at once, bit-for-bit the extractor's arithmetic on each frame."""

    def __init__(self, mel_filters: np.ndarray, global_log_mel_max: float):
        self.filters_t = torch.from_numpy(mel_filters).to(torch.float32).T.contiguous()  # (MELS, WINDOW//2+1)
        self.window = torch.hann_window(WINDOW)
        self.log_max = global_log_mel_max

    def __call__(self, windows: torch.Tensor) -> torch.Tensor:
        """(N, STEP_WINDOW) float32 samples -> (N, MELS, MEL_FRAMES_PER_STEP) float32 features."""
        assert windows.shape[-1] == STEP_WINDOW, windows.shape
        return self.frames(windows)

    def frames(self, signal: torch.Tensor) -> torch.Tensor:
        """(N, S) float32 samples -> (N, MELS, (S - WINDOW) // HOP + 1) features of every frame the signal
        holds: frames 8k..8k+7 of a signal are step k's when step k's window starts at sample STEP_SAMPLES * k."""
        spec = torch.stft(signal, WINDOW, HOP, window=self.window, return_complex=True, center=False)
        power = spec.abs() ** 2  # (N, 201, frames)
        mel = self.filters_t @ power
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, torch.tensor(self.log_max - LOG_MEL_FLOOR_RANGE))
        return (log_spec + 4.0) / 4.0
