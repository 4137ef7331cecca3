"""Every console path is for staff only: people who are not staff are refused, anonymous visitors sent to sign in."""
import pytest
from django.urls import reverse

from administration.urls import urlpatterns
from meetings.models import AuditEvent

pytestmark = pytest.mark.django_db

ARGS = {"version_id": 1, "kind": "asr"}


def console_paths() -> list[str]:
    paths = []
    for pattern in urlpatterns:
        kwargs = {name: ARGS[name] for name in pattern.pattern.converters}
        paths.append(reverse(f"console:{pattern.name}", kwargs=kwargs))
    return paths


def test_every_console_path_is_listed():
    assert len(console_paths()) == len(urlpatterns) >= 10


@pytest.mark.parametrize("path", console_paths())
def test_a_signed_in_person_who_is_not_staff_is_refused(client, outsider, path):
    client.force_login(outsider)
    assert client.get(path).status_code == 403
    assert client.post(path).status_code == 403
    assert AuditEvent.objects.filter(action="access_denied", actor=outsider, detail__needed="staff").exists()


@pytest.mark.parametrize("path", console_paths())
def test_an_anonymous_visitor_is_sent_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_django_admin_for_users_is_closed_to_people_who_are_not_staff(client, outsider):
    client.force_login(outsider)
    response = client.get("/admin/auth/user/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_reach_every_page_of_the_console(admin_client):
    for name in ("status", "models", "settings", "audit"):
        assert admin_client.get(reverse(f"console:{name}")).status_code == 200, name


def test_a_deactivated_staff_member_is_refused(client, admin_user):
    client.force_login(admin_user)
    admin_user.is_active = False
    admin_user.save()
    assert client.get(reverse("console:status")).status_code in (302, 403)


def test_console_forms_need_a_csrf_token(admin_user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(reverse("console:settings"), {"live_delay_ms": 960}).status_code == 403
    assert strict.post(reverse("console:model_import"), {"path": "/tmp"}).status_code == 403
