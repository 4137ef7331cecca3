"""A tiny random-weight Voxtral Realtime model and Tekken tokenizer, built offline for the engine tests.

The architecture is the real one (same modules, same processor); only the sizes are small. Sliding
windows are shortened so that a few seconds of audio already wrap the engine's ring caches.
"""
import json
from pathlib import Path

import torch

import mistral_common
from mistral_common.tokens.tokenizers.base import SpecialTokens

N_SPECIAL = 1000


def write_tekken(folder: Path, *, delay_ms: int = 480, n_left_pad_tokens: int = 32) -> None:
    """Turn mistral-common's bundled v3 vocabulary into a v13 streaming-audio tokenizer file."""
    source = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    data = json.loads(source.read_text())
    names = [t.value for t in SpecialTokens]
    names += [f"<SPECIAL_{i}>" for i in range(len(names), N_SPECIAL)]
    data["special_tokens"] = [{"rank": i, "token_str": name, "is_control": True} for i, name in enumerate(names)]
    data["config"]["version"] = "v13"
    data["audio"] = {
        "sampling_rate": 16000,
        "frame_rate": 12.5,
        "audio_encoding_config": {"num_mel_bins": 128, "hop_length": 160, "window_size": 400},
        "transcription_format": "streaming",
        "transcription_delay_ms": delay_ms,
        "streaming_look_ahead_ms": 2.5,
        "streaming_look_back_ms": 52.5,
        "streaming_n_left_pad_tokens": n_left_pad_tokens,
    }
    (folder / "tekken.json").write_text(json.dumps(data))


def tiny_config(*, text_window: int, encoder_window: int):
    from transformers import VoxtralRealtimeConfig

    return VoxtralRealtimeConfig(
        tie_word_embeddings=False,
        audio_config={
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "head_dim": 16, "sliding_window": encoder_window,
        },
        text_config={
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
            "sliding_window": text_window, "tie_word_embeddings": False,
        },
    )


def make_audio_dependent(model, seed: int) -> None:
    """Default init makes every step repeat one token: the tied head scores the input token's own
    embedding highest. An untied head, small embeddings and a strong projector let the audio steer."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin in (model.model.multi_modal_projector.linear_1, model.model.multi_modal_projector.linear_2):
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * 3.0 / lin.weight.shape[1] ** 0.5)
        emb = model.model.language_model.embed_tokens.weight
        emb.copy_(torch.randn(emb.shape, generator=g) * 0.02)
        model.lm_head.weight.copy_(torch.randn(model.lm_head.weight.shape, generator=g))
        for p in model.model.audio_tower.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)


def build_tiny_model_dir(folder: Path, *, seed: int = 0, text_window: int = 24, encoder_window: int = 40,
                         n_left_pad_tokens: int = 32) -> Path:
    from transformers import (
        MistralCommonBackend,
        VoxtralRealtimeFeatureExtractor,
        VoxtralRealtimeForConditionalGeneration,
        VoxtralRealtimeProcessor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_tekken(folder, n_left_pad_tokens=n_left_pad_tokens)
    torch.manual_seed(seed)
    model = VoxtralRealtimeForConditionalGeneration(tiny_config(text_window=text_window, encoder_window=encoder_window))
    make_audio_dependent(model, seed)
    model.save_pretrained(folder)
    tokenizer = MistralCommonBackend.from_pretrained(folder)
    extractor = VoxtralRealtimeFeatureExtractor(feature_size=128, hop_length=160, win_length=400, sampling_rate=16000)
    VoxtralRealtimeProcessor(extractor, tokenizer).save_pretrained(folder)
    return folder
