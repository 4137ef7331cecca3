"""Engine behaviour around the model: capacity, events, health, offline segmentation, loading errors."""
import queue

import numpy as np
import pytest
import torch

from transcription.engine import (Delta, Engine, EngineAtCapacity, EngineOptions, Final, InvalidAudio, InvalidDelay,
                                  ModelCorrupt, ModelIncomplete, ModelNotFound, StreamClosed, loading, offline)

from .conftest import chirp


def test_it_refuses_a_missing_folder(tmp_path):
    with pytest.raises(ModelNotFound, match="No model folder"):
        Engine.load(tmp_path / "nowhere", EngineOptions(device="cpu"))


def test_it_names_missing_files(tmp_path, tiny_dir):
    (tmp_path / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(ModelIncomplete, match="tekken.json.*model.safetensors"):
        Engine.load(tmp_path, EngineOptions(device="cpu"))


def test_it_refuses_corrupt_weights(tmp_path, tiny_dir):
    for name in ("config.json", "tekken.json", "processor_config.json", "generation_config.json"):
        (tmp_path / name).write_bytes((tiny_dir / name).read_bytes())
    (tmp_path / "model.safetensors").write_bytes((tiny_dir / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(ModelCorrupt, match="cannot be loaded"):
        Engine.load(tmp_path, EngineOptions(device="cpu"))


def test_it_explains_the_native_layout(tmp_path):
    (tmp_path / "params.json").write_text("{}")
    (tmp_path / "consolidated.safetensors").write_bytes(b"")
    with pytest.raises(ModelIncomplete, match="native layout"):
        loading.check_folder(tmp_path)


@pytest.mark.parametrize("delay", [0, 40, 500, 2480, "480"])
def test_it_refuses_bad_delays(engine, delay):
    with pytest.raises(InvalidDelay):
        engine.open_stream(delay_ms=delay)


def test_it_refuses_stereo_or_int32_audio(engine):
    stream = engine.open_stream()
    with pytest.raises(InvalidAudio):
        stream.push(np.zeros((10, 2), np.int16))
    with pytest.raises(InvalidAudio):
        stream.push(np.zeros(10, np.int32))
    stream.abort()


def test_a_full_engine_refuses_a_stream_and_takes_one_when_a_slot_frees(tiny):
    model, _, spec = tiny
    eng = Engine(model, spec, EngineOptions(device="cpu", max_streams=2))
    try:
        a, b = eng.open_stream(), eng.open_stream()
        with pytest.raises(EngineAtCapacity, match="2 live caption slots"):
            eng.open_stream()
        a.close(timeout=60)
        c = eng.open_stream()
        c.push(chirp(0.5))
        assert isinstance(c.close(timeout=60), str)
        b.close(timeout=60)
        with pytest.raises(StreamClosed):
            b.push(chirp(0.1))
    finally:
        eng.shutdown()


def test_events_carry_text_spans_and_lag_and_the_final_text_is_their_sum(engine):
    stream = engine.open_stream(delay_ms=480)
    stream.push(chirp(2.0, seed=4))
    transcript = stream.close_nowait().result(60)
    events = []
    while True:
        try:
            events.append(stream.events.get_nowait())
        except queue.Empty:
            break
    deltas = [e for e in events if isinstance(e, Delta)]
    assert isinstance(events[-1], Final) and events[-1].transcript == transcript
    assert "".join(d.text for d in deltas) == transcript.text
    assert all(d.start_ms < d.end_ms and d.lag_ms >= 0 for d in deltas)
    assert [d.start_ms for d in deltas] == sorted(d.start_ms for d in deltas)
    assert events[-1].as_dict()["kind"] == "final"


def test_health_reports_steps_capacity_and_lag(engine):
    stream = engine.open_stream()
    stream.push(chirp(0.4))
    health = engine.health()
    assert health["capacity"] == 6 and health["alive"]
    assert stream.id in health["streams"] and "lag_ms" in health["streams"][stream.id]
    stream.close(timeout=60)
    health = engine.health()
    assert health["last_step_at"] is not None and health["step_ms_p95"] >= health["step_ms_p50"] > 0


def test_long_recordings_are_cut_at_the_quietest_point_near_the_target():
    pcm = np.random.default_rng(0).standard_normal(25 * 16000).astype(np.float32)
    pcm[int(9.52 * 16000):int(9.60 * 16000)] = 0.0  # the only silence in the search range 9-10 s
    starts = offline.cut_points(pcm, segment_s=10, search_s=1)
    assert starts[0] == 0 and starts[1] == int(9.52 * 16000)
    assert all(s % 1280 == 0 for s in starts)


def test_a_long_recording_is_transcribed_in_segments_with_shifted_times(engine):
    pcm = chirp(9.0, seed=30)  # engine fixture cuts near every 4 s
    transcript = engine.transcribe(pcm, delay_ms=960)
    starts = [t.start_ms for t in transcript.tokens]
    assert starts == sorted(starts) and starts[-1] > 8000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_engine_runs_the_tiny_model_with_cuda_graphs(tiny_dir):
    eng = Engine.load(tiny_dir, EngineOptions(device="cuda", dtype="float32", max_streams=4))
    try:
        stream = eng.open_stream()
        stream.push(chirp(2.0))
        assert isinstance(stream.close(timeout=60), str)
    finally:
        eng.shutdown()
