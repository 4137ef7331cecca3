"""Nothing leaves the building: the offline switches are on and the test guard catches any connection out."""
import os
import socket
import subprocess
import sys

import pytest

from config.egress import EgressBlocked
from tests.servers import REPO, child_env


def test_settings_switch_off_hubs_and_telemetry():
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        assert os.environ[name] == "1", name
    assert os.environ["PYANNOTE_METRICS_ENABLED"] == "0"


@pytest.mark.egress_expected
def test_a_connection_to_an_outside_address_is_refused_even_if_the_caller_swallows_it():
    with pytest.raises(EgressBlocked):
        socket.create_connection(("192.0.2.10", 443), timeout=1)
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError:
        pass  # a caller that hides the error still leaves a report, and the test fails


def test_loopback_and_local_sockets_still_work(db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("select 1")
        assert cursor.fetchone() == (1,)
    socket.getaddrinfo("localhost", 6379)


@pytest.mark.egress_expected
def test_servers_and_workers_started_by_tests_report_attempts_too(db):
    code = "import django, socket; django.setup(); socket.create_connection(('198.51.100.7', 80), timeout=1)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=child_env(), capture_output=True, text=True)
    assert result.returncode != 0 and "outbound network access refused" in result.stderr
