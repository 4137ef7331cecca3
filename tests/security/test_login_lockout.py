"""Sign-in is throttled per account and per address, on the site's and the admin's sign-in (real Daphne).

Before: 30 wrong passwords at about 4 a second, then the right one signed straight in.
"""
import pytest
from django.contrib.auth.models import User

from meetings.models import AuditEvent

from .conftest import FAILURE_LIMIT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(transactional_db):
    User.objects.create_user("alice", password="alice-password-1")
    User.objects.create_user("dana", password="dana-password-1", is_staff=True, is_superuser=True)


def fail(visitor, username: str, times: int, path: str = "/accounts/login/"):
    attacker = visitor()
    for _ in range(times):
        status, _, _ = attacker.sign_in(username, "not-the-password", path=path)
        assert status in (200, 429)


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_an_account_is_locked_after_the_configured_failures_even_for_the_right_password(site, visitor, people, path):
    username, password = ("dana", "dana-password-1") if path.startswith("/admin") else ("alice", "alice-password-1")
    fail(visitor, username, FAILURE_LIMIT, path)
    person = visitor()
    status, headers, body = person.sign_in(username, password, path=path)
    assert status == 429
    assert "Signing in is paused" in body and "ask your site administrator" in body
    assert person.cookie("sessionid") is None
    locked = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_LOCKED, detail__username=username)
    assert locked.exists() and locked.first().ip_address == "127.0.0.1"


def test_one_address_trying_many_accounts_is_locked_out_too(site, visitor, people):
    for n in range(FAILURE_LIMIT):
        fail(visitor, f"guess{n}", 1)
    status, _, body = visitor().sign_in("alice", "alice-password-1")
    assert status == 429 and "from this computer" in body


def test_an_administrator_lifts_the_lockout_in_the_admin_and_it_is_audited(site, visitor, people):
    admin = visitor()
    assert admin.sign_in("dana", "dana-password-1")[0] == 302  # signed in before the attack
    fail(visitor, "alice", FAILURE_LIMIT)
    assert visitor().sign_in("alice", "alice-password-1")[0] == 429

    status, _, page = admin.request("/admin/axes/accessattempt/")
    assert status == 200 and "alice" in page
    from axes.models import AccessAttempt

    ids = [str(pk) for pk in AccessAttempt.objects.values_list("pk", flat=True)]
    status, _, _ = admin.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert status == 302
    assert not AccessAttempt.objects.exists()
    lifted = AuditEvent.objects.get(action=AuditEvent.Action.LOCKOUT_LIFTED, detail__username="alice")
    assert lifted.actor_username == "dana"

    alice = visitor()
    assert alice.sign_in("alice", "alice-password-1")[0] == 302
    assert alice.request("/")[0] == 200
