"""Weights folders copied in by an administrator are checked file by file before anything loads them."""
import json
import os

import pytest

from administration.weights import ASR, DIARIZATION, MANIFEST_NAME, WeightsError, verify_folder


@pytest.fixture
def asr_folder(tmp_path):
    folder = tmp_path / "voxtral"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "voxtral_realtime"}))
    (folder / "tekken.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    return folder


def test_a_first_import_writes_a_manifest_and_a_second_one_checks_it(asr_folder):
    kind, files, written = verify_folder(asr_folder)
    assert (kind, written) == (ASR, True)
    assert set(files) == {"config.json", "tekken.json", "model.safetensors"}
    assert json.loads((asr_folder / MANIFEST_NAME).read_text())["files"]["model.safetensors"]["size"] == 4096
    assert verify_folder(asr_folder)[2] is False


def test_a_flipped_bit_is_found_and_the_file_named(asr_folder):
    verify_folder(asr_folder)
    data = bytearray((asr_folder / "model.safetensors").read_bytes())
    data[1234] ^= 0x01
    (asr_folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"model.safetensors is corrupt"):
        verify_folder(asr_folder)


def test_a_missing_file_is_named(asr_folder):
    (asr_folder / "tekken.json").unlink()
    with pytest.raises(WeightsError, match="incomplete: tekken.json is missing"):
        verify_folder(asr_folder)


def test_a_file_lost_after_import_is_named(asr_folder):
    (asr_folder / "generation_config.json").write_text("{}")
    verify_folder(asr_folder)
    (asr_folder / "generation_config.json").unlink()
    with pytest.raises(WeightsError, match="generation_config.json is missing"):
        verify_folder(asr_folder)


def test_every_shard_of_a_sharded_checkpoint_must_be_there(asr_folder):
    (asr_folder / "model.safetensors").rename(asr_folder / "model-00001-of-00002.safetensors")
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (asr_folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="model-00002-of-00002.safetensors is missing"):
        verify_folder(asr_folder)


def test_a_link_leading_outside_the_folder_is_refused(asr_folder, tmp_path):
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not a model file")
    (asr_folder / "extra.json").symlink_to(secret)
    with pytest.raises(WeightsError, match="extra.json is a link to .*outside the model folder"):
        verify_folder(asr_folder)


def test_a_link_inside_the_folder_is_allowed(asr_folder):
    (asr_folder / "tokenizer.json").symlink_to(asr_folder / "tekken.json")
    assert "tokenizer.json" in verify_folder(asr_folder)[1]


def test_mistral_native_layout_gets_instructions(tmp_path):
    (tmp_path / "params.json").write_text("{}")
    (tmp_path / "consolidated.safetensors").write_bytes(b"x")
    with pytest.raises(WeightsError, match="native layout.*transformers layout"):
        verify_folder(tmp_path)


def test_a_pyannote_pipeline_folder_is_recognised(tmp_path):
    (tmp_path / "config.yaml").write_text("pipeline: {}\n")
    assert verify_folder(tmp_path)[0] == DIARIZATION


def test_a_folder_on_a_read_only_disk_is_still_verified(asr_folder, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("administration.weights.write_manifest", refuse)
    kind, files, written = verify_folder(asr_folder)
    assert kind == ASR and written is False and len(files) == 3
