from pathlib import Path

import pytest
from django.contrib.auth.models import User


@pytest.fixture
def admin_user(db):
    return User.objects.create_user("dana", password="dana-password-1", first_name="Dana", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def model_folder(tiny_model_dir, tmp_path):
    """A private copy of the tiny Voxtral folder, as an administrator would copy it from a USB disk."""
    import shutil

    return Path(shutil.copytree(tiny_model_dir, tmp_path / "voxtral-tiny"))


def flip_bit(path: Path, offset: int = 1234) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
