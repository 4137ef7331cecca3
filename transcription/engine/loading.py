"""Loading Voxtral Realtime from a local folder, with errors an administrator can act on.

Nothing is ever downloaded: `local_files_only=True` and the folder must hold the transformers layout.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .errors import ModelCorrupt, ModelIncomplete, ModelNotFound

REQUIRED_FILES = ("config.json", "tekken.json", "processor_config.json")
NATIVE_FILES = ("params.json", "consolidated.safetensors")


@dataclass(frozen=True)
class ModelSpec:
    """What the engine needs from the tokenizer and processor, so the hot path never touches them."""

    bos_id: int
    streaming_pad_id: int
    eos_id: int
    n_left_pad_steps: int  # silent steps the model expects before the audio
    mel_filters: np.ndarray  # (WINDOW//2+1, MELS) float64, the extractor's own
    global_log_mel_max: float
    decode: Callable[[list[int]], str]  # text of non-special tokens
    special_ids: frozenset

    def prompt(self, delay_steps: int) -> list[int]:
        """BOS, then one streaming pad per left-pad step and per delay step, as mistral-common encodes it."""
        return [self.bos_id] + [self.streaming_pad_id] * (self.n_left_pad_steps + delay_steps)

    @staticmethod
    def right_pad_steps(delay_steps: int) -> int:
        # mistral-common's n_right_pad_tokens: the delay, BOS, and 10 steps for the longest word.
        return delay_steps + 1 + 10


def check_folder(model_dir: Path) -> Path:
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ModelNotFound(f"No model folder at {folder}. Copy the Voxtral Mini 4B Realtime folder there or fix the path.")
    if all((folder / n).exists() for n in NATIVE_FILES) and not (folder / "config.json").exists():
        raise ModelIncomplete(
            f"{folder} is in Mistral's native layout (params.json, consolidated.safetensors). The engine loads the "
            "Hugging Face transformers layout (config.json, model*.safetensors, tekken.json, processor_config.json)."
        )
    missing = [n for n in REQUIRED_FILES if not (folder / n).is_file()]
    if not any(folder.glob("model*.safetensors")):
        missing.append("model.safetensors (or model-0000x-of-0000y.safetensors shards)")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError) as exc:
            raise ModelCorrupt(f"{index} cannot be read ({exc}). Copy the file again from the model release.") from exc
        missing += sorted(s for s in shards if not (folder / s).is_file())
    if missing:
        raise ModelIncomplete(f"The model folder {folder} is missing: {', '.join(missing)}. Copy the complete folder again.")
    return folder


def load(model_dir, device: torch.device, dtype: torch.dtype):
    """Model on `device` in `dtype`, eval mode, plus its `ModelSpec`."""
    from transformers import VoxtralRealtimeForConditionalGeneration, VoxtralRealtimeProcessor

    folder = check_folder(model_dir)
    try:
        processor = VoxtralRealtimeProcessor.from_pretrained(folder, local_files_only=True)
    except Exception as exc:  # transformers and mistral-common raise many types for a bad file
        raise ModelCorrupt(f"The tokenizer or processor files in {folder} cannot be read: {exc}") from exc
    try:
        model = VoxtralRealtimeForConditionalGeneration.from_pretrained(
            folder, local_files_only=True, dtype=dtype, attn_implementation="sdpa"
        ).to(device)
    except Exception as exc:
        raise ModelCorrupt(f"The model weights in {folder} cannot be loaded: {exc}. Copy the folder again.") from exc
    return model.eval(), spec_from_processor(processor)


def spec_from_processor(processor) -> ModelSpec:
    tokenizer = processor.tokenizer
    audio_encoder = tokenizer.tokenizer.instruct_tokenizer.audio_encoder
    raw = tokenizer.tokenizer.instruct_tokenizer.tokenizer
    special = frozenset(range(raw.num_special_tokens))
    extractor = processor.feature_extractor

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    return ModelSpec(
        bos_id=raw.bos_id,
        streaming_pad_id=audio_encoder.streaming_pad,
        eos_id=raw.eos_id,
        n_left_pad_steps=audio_encoder.audio_config.n_left_pad_tokens,
        mel_filters=extractor.mel_filters,
        global_log_mel_max=extractor.global_log_mel_max,
        decode=decode,
        special_ids=special,
    )
