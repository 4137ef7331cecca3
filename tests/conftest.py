import json
import os
import tempfile

import pytest
from django.contrib.auth.models import Group, User

from config import egress

# Every test runs behind the no-egress guard; servers and workers the tests start inherit the
# report file through the environment and write their refused attempts to it too.
EGRESS_REPORT = os.environ.setdefault("SCRIBE_EGRESS_GUARD_LOG", tempfile.mktemp(prefix="scribe-egress-", suffix=".jsonl"))
egress.install_guard(report_path=EGRESS_REPORT)


def _egress_attempts() -> list[dict]:
    try:
        with open(EGRESS_REPORT, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


@pytest.fixture(autouse=True)
def no_egress(request):
    before = len(_egress_attempts())
    yield
    attempts = _egress_attempts()[before:]
    if request.node.get_closest_marker("egress_expected"):
        # The guard's own tests: the attempt must have been caught and reported.
        assert attempts, "the egress guard did not report the attempted connection"
    elif attempts:
        pytest.fail("outbound network access was attempted: " + "; ".join(a["what"] for a in attempts), pytrace=False)


@pytest.fixture(autouse=True)
def fresh_channel_layers():
    """Each test gets channel layers of its own. channels_redis keeps a receive lock per layer, bound to the
    event loop that first waited on it; each async test runs its own loop, and a reader left over from an
    earlier test's loop made the next one fail ("bound to a different event loop"). A server process has
    one loop and never meets this."""
    from channels.layers import channel_layers

    yield
    channel_layers.backends = {}


@pytest.fixture(scope="session", autouse=True)
def _end_child_connections(django_db_setup, django_db_blocker):
    """Servers and workers started by tests may leave a connection closing; the test database can only be dropped without them."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random-weight Voxtral Realtime model folder (real architecture and tokenizer), built offline."""
    from tests.engine.tiny_model import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("voxtral-tiny"), seed=0)


@pytest.fixture
def owner(db):
    return User.objects.create_user("alice", password="alice-password-1", first_name="Alice")


@pytest.fixture
def member(db):
    return User.objects.create_user("bob", password="bob-password-1", first_name="Bob")


@pytest.fixture
def outsider(db):
    return User.objects.create_user("carol", password="carol-password-1", first_name="Carol")


@pytest.fixture
def team(db, member):
    group = Group.objects.create(name="Cardiology")
    member.groups.add(group)
    return group
