"""The nginx site refuses oversized bodies per location, before they reach Daphne (Debian's nginx, rendered
by deploy/render-nginx.sh, in front of the test server).

Before: the site allowed 8 GB on every URL.
"""
import shutil

import pytest

from tests.deploy.site import Browser, Site, make_self_signed_cert, nginx, write_env_file
from tests.servers import free_port

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def proxied(site, tmp_path_factory):
    if not shutil.which("nginx"):
        pytest.skip("nginx is not installed (tests/run.sh installs it)")
    root = tmp_path_factory.mktemp("nginx-site")
    daphne_port = int(site.rsplit(":", 1)[1])
    https_port, http_port = free_port(), free_port()
    env_file = write_env_file(root, db_name="unused", run_id="security", https_port=https_port, http_port=http_port,
                              daphne_port=daphne_port)
    with open(env_file, "a") as out:
        out.write("SCRIBE_REQUEST_BODY_MAX_KB=256\nSCRIBE_UPLOAD_PIECE_MB=1\n")
    front = Site(root=root, venv=root, env_file=env_file, https_port=https_port, http_port=http_port,
                 daphne_port=daphne_port, db_name="unused", cert=make_self_signed_cert(root / "tls"))
    with nginx(root, env_file, https_port) as folder:
        yield front, folder


def body_temp_bytes(folder) -> int:
    return sum(p.stat().st_size for p in (folder / "client_body-temp").rglob("*") if p.is_file())


def test_an_oversized_post_is_refused_by_nginx_and_never_spooled(proxied):
    front, folder = proxied
    status, headers, body = Browser(front).request("/accounts/login/", data=b"x" * (2 * MiB))
    assert status == 413 and headers["Server"] == "nginx"
    assert body_temp_bytes(folder) == 0


def test_a_recording_piece_passes_nginx_on_the_upload_route_only(proxied):
    front, _ = proxied
    piece = b"\0" * (MiB - 1024)
    status, headers, body = Browser(front).request("/meetings/1/recordings/uploads/" + "0" * 32, data=piece)
    assert status == 403 and b"signed out" in body  # through nginx; Daphne refused the signed-out client
    status, headers, _ = Browser(front).request("/meetings/new", data=piece)
    assert status == 413 and headers["Server"] == "nginx"
    status, headers, _ = Browser(front).request("/meetings/1/recordings/uploads/" + "0" * 32, data=piece * 2)
    assert status == 413 and headers["Server"] == "nginx"


def test_the_audit_trail_records_the_address_nginx_saw_not_one_the_client_claims(proxied, transactional_db):
    from meetings.models import AuditEvent

    front, _ = proxied
    browser = Browser(front)
    browser.request("/accounts/login/")
    status, _, _ = browser.request("/accounts/login/", data=f"username=alice&password=wrong&csrfmiddlewaretoken={browser.cookie('csrftoken')}".encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded", "X-Real-IP": "203.0.113.9"})
    assert status == 200
    assert AuditEvent.objects.get(action=AuditEvent.Action.LOGIN_FAILED).ip_address == "127.0.0.1"
