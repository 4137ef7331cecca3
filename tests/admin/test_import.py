"""manage.py import_model: a folder is read file by file, kept in the registry, refused with the bad file named."""
import hashlib
import json

import pytest
from django.core.management import CommandError, call_command

from administration.models import ModelVersion
from administration.weights import MANIFEST_NAME
from meetings.models import AuditEvent

from .conftest import flip_bit

pytestmark = pytest.mark.django_db


def import_model(*args) -> ModelVersion:
    call_command("import_model", *map(str, args))
    return ModelVersion.objects.get()


def test_a_good_model_is_imported_with_the_checksum_of_every_file(model_folder):
    version = import_model(model_folder, "--kind", "asr", "--name", "voxtral-tiny-v1")
    assert (version.name, version.kind, version.status) == ("voxtral-tiny-v1", "asr", "imported")
    weights = model_folder / "model.safetensors"
    assert version.files["model.safetensors"] == {"sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "size": weights.stat().st_size}
    assert set(version.files) == {p.name for p in model_folder.iterdir()} - {MANIFEST_NAME}
    assert version.size_bytes == sum(p.stat().st_size for p in model_folder.iterdir() if p.name != MANIFEST_NAME)
    assert json.loads((model_folder / MANIFEST_NAME).read_text())["files"] == version.files
    event = AuditEvent.objects.get(action="model_import")
    assert event.detail["manifest"] == "written" and event.object_id == str(version.pk)


def test_a_folder_that_brings_its_manifest_is_checked_against_it_and_counts_as_verified(model_folder):
    import_model(model_folder, "--name", "first")
    call_command("import_model", str(model_folder), "--name", "second")
    second = ModelVersion.objects.get(name="second")
    assert second.status == "verified" and second.verified_at is not None
    assert AuditEvent.objects.filter(action="model_import").first().detail["manifest"] == "checked"


def test_a_flipped_bit_is_refused_and_the_file_named(model_folder):
    import_model(model_folder, "--name", "first")
    flip_bit(model_folder / "model.safetensors")
    with pytest.raises(CommandError, match=r"model\.safetensors is corrupt"):
        call_command("import_model", str(model_folder), "--name", "second")
    failed = ModelVersion.objects.get(name="second")
    assert failed.status == "failed" and "model.safetensors" in failed.error and not failed.can_activate


def test_a_missing_file_is_refused_and_named(model_folder):
    (model_folder / "tekken.json").unlink()
    with pytest.raises(CommandError, match="incomplete: tekken.json is missing"):
        call_command("import_model", str(model_folder))
    assert ModelVersion.objects.get().status == "failed"


def test_a_link_leading_outside_the_folder_is_refused_not_followed(model_folder, tmp_path):
    secret = tmp_path / "passwords.txt"
    secret.write_text("not a model file")
    (model_folder / "extra.json").symlink_to(secret)
    with pytest.raises(CommandError, match="extra.json is a link to .*outside the model folder"):
        call_command("import_model", str(model_folder))
    assert "passwords" not in json.dumps(ModelVersion.objects.get().files)


def test_mistral_native_layout_is_refused_with_conversion_instructions(tmp_path):
    (tmp_path / "params.json").write_text("{}")
    (tmp_path / "consolidated.safetensors").write_bytes(b"x")
    (tmp_path / "tekken.json").write_text("{}")
    with pytest.raises(CommandError, match="native layout.*convert"):
        call_command("import_model", str(tmp_path))
    assert not ModelVersion.objects.exists()


def test_a_folder_of_the_other_kind_is_refused(model_folder):
    with pytest.raises(CommandError, match="holds a Speech recognition .* model, not Speaker separation"):
        call_command("import_model", str(model_folder), "--kind", "diarization")


def test_a_relative_or_missing_path_is_refused_in_words(tmp_path):
    with pytest.raises(CommandError, match="full path"):
        call_command("import_model", "models/voxtral")
    with pytest.raises(CommandError, match="There is no folder at"):
        call_command("import_model", str(tmp_path / "nowhere"))


def test_a_pyannote_pipeline_folder_is_imported_as_diarization(tmp_path):
    (tmp_path / "config.yaml").write_text("pipeline: {}\n")
    (tmp_path / "segmentation").mkdir()
    (tmp_path / "segmentation" / "pytorch_model.bin").write_bytes(b"\0" * 1000)
    version = import_model(tmp_path, "--kind", "diarization")
    assert version.kind == "diarization" and set(version.files) == {"config.yaml", "segmentation/pytorch_model.bin"}


def test_activate_on_import_verifies_first_and_then_activates(model_folder):
    version = import_model(model_folder, "--activate")
    assert version.status == "active"
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == ["model_import", "model_verify", "model_activate"]


def test_from_the_command_line_an_administrator_verifies_activates_and_rolls_back(model_folder, tmp_path):
    import shutil

    first = import_model(model_folder, "--name", "v1")
    call_command("verify_model", "v1")
    call_command("activate_model", "v1")
    second_folder = shutil.copytree(model_folder, tmp_path / "v2")
    call_command("import_model", str(second_folder), "--name", "v2", "--activate")
    assert ModelVersion.objects.get(status="active").name == "v2"
    call_command("activate_model", "--rollback", "asr")
    first.refresh_from_db()
    assert first.status == "active" and ModelVersion.objects.get(name="v2").status == "retired"
    flip_bit(model_folder / "model.safetensors")
    with pytest.raises(CommandError, match="model.safetensors is corrupt"):
        call_command("verify_model", "v1")


def test_the_command_shows_how_much_it_has_read(model_folder):
    import io

    out = io.StringIO()
    call_command("import_model", str(model_folder), stdout=out)
    assert "100% of 0.08 GB read" in out.getvalue() and "Imported voxtral-tiny" in out.getvalue()


def test_a_version_whose_import_failed_is_not_verified_but_imported_again(model_folder):
    (model_folder / "tekken.json").unlink()
    with pytest.raises(CommandError):
        call_command("import_model", str(model_folder), "--name", "broken")
    with pytest.raises(CommandError, match="never imported completely; fix the folder and import it again"):
        call_command("verify_model", "broken")


def test_one_large_checkpoint_reports_progress_while_it_is_read(tmp_path):
    """A single multi-GB safetensors file is most of a model: progress must move inside it, not jump at its end."""
    from administration.weights import CHUNK, fingerprint

    (tmp_path / "config.yaml").write_text("pipeline: {}\n")
    (tmp_path / "weights.bin").write_bytes(b"\1" * (CHUNK * 4 + 5))
    seen = []
    entries = fingerprint(tmp_path, progress=lambda done, total: seen.append((done, total)))
    total = 13 + CHUNK * 4 + 5
    assert all(t == total for _, t in seen) and seen[-1][0] == total
    inside = [d for d, _ in seen if 13 < d < total]
    assert len(inside) >= 3, "no progress while the large file was being read"
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert entries["weights.bin"].sha256 == hashlib.sha256((tmp_path / "weights.bin").read_bytes()).hexdigest()
