import pytest
from django.contrib.auth.models import User


@pytest.fixture
def admin_user(db):
    return User.objects.create_user("dana", password="dana-password-1", first_name="Dana", is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client
