"""transformers' own two ways to run Voxtral Realtime, used as the ground truth for the engine.

`generate_tokens` is the offline path (mistral-common encodes the request, `generate` runs the whole
recording); `streaming_tokens` is the streaming path from the transformers documentation (first chunk
through the processor, then 1680-sample chunks from a generator), with the recording right-padded as
the model needs (the documented example pads into a variable it then does not use).
"""
import numpy as np
import torch

HOP, WIN, STEP = 160, 400, 1280


def _delay_tokens(processor, delay_ms):
    return processor.mistral_common_audio_config.get_num_delay_tokens(delay_ms)


def generate_tokens(model, processor, audio: np.ndarray, delay_ms: int) -> list[int]:
    from mistral_common.protocol.transcription.request import StreamingMode, TranscriptionRequest
    from mistral_common.tokens.tokenizers.audio import Audio

    request = TranscriptionRequest(
        audio=Audio(audio_array=audio, sampling_rate=16000, format="wav").to_base64("wav"),
        streaming=StreamingMode.OFFLINE, language=None, target_streaming_delay_ms=delay_ms,
    )
    encoded = processor.tokenizer.tokenizer.encode_transcription(request)
    features = processor.feature_extractor([a.audio_array for a in encoded.audios], sampling_rate=16000,
                                           return_tensors="pt").input_features
    input_ids = torch.tensor([encoded.tokens])
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, input_features=features.to(model.dtype),
                             num_delay_tokens=_delay_tokens(processor, delay_ms))
    return out[0, input_ids.shape[1]:].tolist()


def streaming_tokens(model, processor, audio: np.ndarray, delay_ms: int) -> list[int]:
    cfg = processor.mistral_common_audio_config
    d = _delay_tokens(processor, delay_ms)
    audio = np.pad(audio, (0, -len(audio) % STEP + (d + 1 + 10) * STEP))  # mistral-common's right pad
    first_frames = (d + 1) * (STEP // HOP)
    first_samples = (first_frames - 1) * HOP + WIN // 2
    left = np.zeros(cfg.n_left_pad_tokens * STEP, np.float32)
    first = processor.feature_extractor(np.concatenate([left, audio[:first_samples]]), sampling_rate=16000,
                                        return_tensors="pt").input_features
    tok = processor.tokenizer.tokenizer.instruct_tokenizer
    input_ids = torch.tensor([tok.start() + tok.audio_encoder.encode_streaming_tokens(delay_ms)])

    def chunks():
        yield first.to(model.dtype)
        frame = first_frames
        start = frame * HOP - WIN // 2
        while (end := start + STEP + WIN) < len(audio):
            yield processor(audio[start:end], is_streaming=True, is_first_audio_chunk=False,
                            return_tensors="pt").input_features.to(model.dtype)
            frame += STEP // HOP
            start = frame * HOP - WIN // 2

    with torch.no_grad():
        out = model.generate(input_ids=input_ids, input_features=chunks(), num_delay_tokens=d)
    return out[0, input_ids.shape[1]:].tolist()


def until_eos(tokens: list[int], eos_id: int) -> list[int]:
    """generate stops a sequence at EOS; the live engine keeps going, so compare up to and with it."""
    return tokens[: tokens.index(eos_id) + 1] if eos_id in tokens else tokens
