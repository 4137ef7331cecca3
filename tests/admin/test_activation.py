"""Activating a model version swaps the speech engine without dropping a running stream; rollback goes back."""
import numpy as np
import pytest
from django.db import IntegrityError

from administration import registry
from administration.models import ModelVersion
from meetings.models import AuditEvent
from transcription import engine_host

from .conftest import flip_bit

pytestmark = pytest.mark.django_db


@pytest.fixture
def engine_settings(settings, monkeypatch):
    settings.ASR_MODEL_DIR = ""
    settings.ASR_DEVICE = "cpu"
    settings.ASR_MAX_STREAMS = 2
    # The test drives refresh() itself; the monitor thread stays out of the way.
    monkeypatch.setattr(engine_host, "MONITOR_EVERY_S", 3600)
    monkeypatch.setattr(engine_host, "ACTIVE_RECHECK_S", 0)
    monkeypatch.setattr(engine_host, "RETIRE_IDLE_S", 0.2)
    engine_host.reset()
    yield settings
    engine_host.reset()


@pytest.fixture
def second_folder(tiny_model_dir, tmp_path_factory):
    """Another tiny model with different weights: a new release of the same architecture."""
    from tests.engine.tiny_model import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("voxtral-tiny-b"), seed=1)


def imported(folder, name, admin_user) -> ModelVersion:
    version = registry.model_version_register(path=str(folder), name=name, by=admin_user)
    version = registry.model_version_import(version=version)
    return registry.model_version_verify(version=registry.model_version_start_check(version=version), by=admin_user)


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)


def test_an_imported_model_cannot_be_activated_before_it_is_verified(model_folder, admin_user):
    version = registry.model_version_import(version=registry.model_version_register(path=str(model_folder), by=admin_user))
    with pytest.raises(registry.RegistryError, match="only a verified model can be activated"):
        registry.model_version_activate(version=version, by=admin_user)


def test_the_database_refuses_a_second_active_model_of_a_kind(model_folder, second_folder, admin_user):
    a, b = imported(model_folder, "a", admin_user), imported(second_folder, "b", admin_user)
    ModelVersion.objects.filter(pk=a.pk).update(status="active")
    with pytest.raises(IntegrityError):
        ModelVersion.objects.filter(pk=b.pk).update(status="active")


def test_activating_a_new_version_serves_new_streams_from_it_while_a_running_stream_finishes_on_the_old_one(
        engine_settings, model_folder, second_folder, admin_user):
    a, b = imported(model_folder, "voxtral-a", admin_user), imported(second_folder, "voxtral-b", admin_user)
    registry.model_version_activate(version=a, by=admin_user)
    old = engine_host.get_engine()
    assert engine_host.host_health()["model"] == "voxtral-a"
    running = old.open_stream(480)
    running.push(noise(1.0))

    registry.model_version_activate(version=b, by=admin_user)
    engine_host.refresh()
    new = engine_host.get_engine()
    assert new is not old and engine_host.host_health()["model"] == "voxtral-b"
    a.refresh_from_db()
    assert (a.status, ModelVersion.objects.get(pk=b.pk).status) == ("retired", "active")

    steps_at_swap = old.health()["steps"]
    running.push(noise(1.0, seed=1))  # the stream opened before the swap goes on, on the old engine
    assert isinstance(running.close(timeout=120), str)
    assert old.health()["steps"] > steps_at_swap
    assert engine_host.host_health()["active_streams"] == 0

    fresh = engine_host.get_engine().open_stream(480)
    fresh.push(noise(0.5))
    assert isinstance(fresh.close(timeout=120), str)

    # With no stream left, the old engine is shut down after RETIRE_IDLE_S.
    engine_host.refresh()
    import time

    time.sleep(0.3)
    engine_host.refresh()
    assert old.health()["alive"] is False and new.health()["alive"] is True
    assert engine_host.host_health()["retiring"] == []
    event = AuditEvent.objects.filter(action="model_activate").first()
    assert event.detail == {"kind": "asr", "name": "voxtral-b", "previous": "voxtral-a"} and event.actor == admin_user


def test_a_new_version_that_fails_to_load_leaves_the_old_engine_serving(engine_settings, model_folder, second_folder, admin_user):
    a, b = imported(model_folder, "voxtral-a", admin_user), imported(second_folder, "voxtral-b", admin_user)
    registry.model_version_activate(version=a, by=admin_user)
    old = engine_host.get_engine()
    flip_bit(second_folder / "model.safetensors")  # damaged after it was verified

    registry.model_version_activate(version=b, by=admin_user)
    engine_host.refresh()
    assert engine_host.get_engine() is old and old.health()["alive"]
    health = engine_host.host_health()
    assert health["serving"] is True and health["model"] == "voxtral-a"
    assert "voxtral-b" in health["failure"] and "model.safetensors is corrupt" in health["failure"]

    engine_host.refresh()  # no retry on every tick: each try reads the whole folder
    assert engine_host.get_engine() is old
    flip_bit(second_folder / "model.safetensors")  # the administrator copies the file again ...
    registry.model_version_verify(version=registry.model_version_start_check(version=b), by=admin_user)  # ... and verifies
    engine_host.refresh()
    assert engine_host.get_engine() is not old and engine_host.host_health()["model"] == "voxtral-b"


def test_rollback_goes_back_to_the_previous_version_and_is_audited(engine_settings, model_folder, second_folder, admin_user):
    a, b = imported(model_folder, "voxtral-a", admin_user), imported(second_folder, "voxtral-b", admin_user)
    registry.model_version_activate(version=a, by=admin_user)
    registry.model_version_activate(version=b, by=admin_user)
    engine_host.get_engine()
    assert engine_host.host_health()["model"] == "voxtral-b"

    back = registry.model_version_rollback(kind="asr", by=admin_user)
    assert back.pk == a.pk and back.status == "active"
    engine_host.refresh()
    assert engine_host.host_health()["model"] == "voxtral-a"
    event = AuditEvent.objects.get(action="model_rollback")
    assert event.detail["previous"] == "voxtral-b" and event.actor == admin_user


def test_with_nothing_active_the_engine_falls_back_to_the_configured_folder(engine_settings, model_folder):
    engine_settings.ASR_MODEL_DIR = str(model_folder)
    engine_host.get_engine()
    assert engine_host.host_health()["model"] == "voxtral-tiny"


def test_at_start_up_a_folder_that_no_longer_matches_its_manifest_is_not_loaded(engine_settings, model_folder):
    from administration.weights import verify_folder

    verify_folder(model_folder)  # writes the manifest, as import does
    flip_bit(model_folder / "model.safetensors")
    engine_settings.ASR_MODEL_DIR = str(model_folder)
    with pytest.raises(engine_host.EngineUnavailable, match="model.safetensors is corrupt"):
        engine_host.get_engine()
    assert engine_host.host_health()["serving"] is False


def test_reprocessing_finds_the_active_speaker_separation_folder_or_the_configured_one(settings, tmp_path, admin_user):
    settings.DIARIZATION_DIR = "/srv/models/pyannote-from-env"
    assert registry.active_model_dir("diarization") == "/srv/models/pyannote-from-env"
    (tmp_path / "config.yaml").write_text("pipeline: {}\n")
    version = imported(tmp_path, "pyannote-3.1", admin_user)
    registry.model_version_activate(version=version, by=admin_user)
    assert registry.active_model_dir("diarization") == str(tmp_path.resolve())


def test_when_two_models_do_not_fit_the_new_one_waits_until_no_stream_runs(engine_settings, model_folder, second_folder, admin_user, monkeypatch):
    from transcription.engine import Engine, EngineError

    real_load = Engine.load.__func__

    def load_on_a_full_gpu(cls, model_dir, options):
        if engine_host.loaded_engine() is not None and engine_host.loaded_engine().health()["alive"]:
            raise EngineError("Not enough free GPU memory for even one stream: 0.4 GiB free after loading the model")
        return real_load(cls, model_dir, options)

    monkeypatch.setattr(Engine, "load", classmethod(load_on_a_full_gpu))
    a, b = imported(model_folder, "voxtral-a", admin_user), imported(second_folder, "voxtral-b", admin_user)
    registry.model_version_activate(version=a, by=admin_user)
    old = engine_host.get_engine()
    running = old.open_stream(480)
    running.push(noise(1.0))

    registry.model_version_activate(version=b, by=admin_user)
    engine_host.refresh()
    health = engine_host.host_health()
    assert (health["model"], health["waiting_for"], health["failure"], health["serving"]) == ("voxtral-a", "voxtral-b", None, True)
    assert engine_host.get_engine() is old  # new meetings keep getting captions meanwhile

    assert isinstance(running.close(timeout=120), str)  # the running meeting ends normally
    engine_host.refresh()
    new = engine_host.get_engine()
    assert new is not old and old.health()["alive"] is False
    assert engine_host.host_health()["model"] == "voxtral-b" and engine_host.host_health()["waiting_for"] is None


def test_a_new_version_that_would_serve_fewer_meetings_beside_the_old_one_waits_for_idle(engine_settings, model_folder, second_folder, admin_user, monkeypatch):
    real_options = engine_host.engine_options

    def options_on_a_shared_gpu():
        # Beside a loaded engine, free GPU memory allows a smaller pool, as Engine sizes it on CUDA.
        from dataclasses import replace

        options = real_options()
        return replace(options, max_streams=1) if engine_host.loaded_engine() is not None else options

    monkeypatch.setattr(engine_host, "engine_options", options_on_a_shared_gpu)
    a, b = imported(model_folder, "voxtral-a", admin_user), imported(second_folder, "voxtral-b", admin_user)
    registry.model_version_activate(version=a, by=admin_user)
    old = engine_host.get_engine()
    assert old.capacity == 2
    running = old.open_stream(480)

    registry.model_version_activate(version=b, by=admin_user)
    engine_host.refresh()
    assert engine_host.get_engine() is old and engine_host.host_health()["waiting_for"] == "voxtral-b"

    running.close(timeout=120)
    engine_host.refresh()
    new = engine_host.get_engine()
    assert new is not old and new.capacity == 2 and engine_host.host_health()["model"] == "voxtral-b"
