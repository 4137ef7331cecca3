"""The air-gapped install end to end: wheelhouse, offline install, nginx with TLS, backup and restore.

Slow by nature (the wheelhouse holds torch with its CUDA libraries). The wheelhouse is built once per
set of pins and kept in ~/.cache/scribe/wheelhouse; the offline install into a fresh venv runs every time.
"""
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import REPO

from .site import DEPLOY, Browser, WebSocket, new_site, running

pytestmark = [pytest.mark.slow, pytest.mark.deploy]

CACHE = Path(os.environ.get("SCRIBE_WHEELHOUSE_CACHE", Path.home() / ".cache/scribe/wheelhouse"))
NUMBERS = REPO / "test-artifacts" / "deploy-numbers.txt"
PHRASE = "kidney function tomorrow"


def record(name: str, value) -> None:
    NUMBERS.parent.mkdir(exist_ok=True)
    with open(NUMBERS, "a") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {name}={value}\n")


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


@pytest.fixture(scope="module")
def wheelhouse():
    """The cuda-profile wheelhouse of requirements.txt, built here the first time (needs PyPI), then reused."""
    key = hashlib.sha256((REPO / "requirements.txt").read_bytes()).hexdigest()[:16]
    folder = CACHE / f"cuda-{key}"
    if not (folder / "SHA256SUMS").exists():
        started = time.monotonic()
        built = subprocess.run(["bash", str(REPO / "deploy/build-wheelhouse.sh"), "--profile", "cuda", "--out", str(folder)],
                               capture_output=True, text=True, timeout=1800)
        offline = ("NewConnectionError", "Failed to establish", "Temporary failure in name resolution", "Network is unreachable")
        if built.returncode != 0 and any(sign in built.stderr for sign in offline):
            pytest.skip("the wheelhouse cannot be built here: the package index cannot be reached")
        assert built.returncode == 0, built.stderr[-4000:]
        record("wheelhouse_build_s", round(time.monotonic() - started))
    record("wheelhouse_bytes", du_bytes(folder))
    return folder


@pytest.fixture(scope="module")
def site(wheelhouse, tmp_path_factory):
    for tool in ("nginx", "openssl", "pg_dump", "pg_restore"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed (tests/run.sh installs it)")
    run_id = os.environ.get("SCRIBE_TEST_RUN_ID", str(os.getpid()))
    root = tmp_path_factory.mktemp("site")
    site = new_site(root, root / "venv", run_id=run_id)
    # SCRIBE_DEPLOY_TEST_VENV: a venv installed earlier from the same wheelhouse, to work on these tests
    # without waiting minutes for the install each time.
    reuse = os.environ.get("SCRIBE_DEPLOY_TEST_VENV")
    if reuse:
        site.venv = Path(reuse)
    started = time.monotonic()
    installed = subprocess.run(
        ["bash", str(REPO / "deploy/install-offline.sh"), str(wheelhouse), "--app", str(REPO), "--venv", str(site.venv),
         "--env", str(site.env_file), *(["--keep-venv"] if reuse else [])],
        capture_output=True, text=True, timeout=900, env=site.env())
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    if not reuse:
        record("offline_install_s", round(time.monotonic() - started))
        record("venv_bytes", du_bytes(site.venv))
    site.manage("shell", "-v", "0", "-c", SEED.format(wav=root / "round.wav"))
    try:
        with running(site):
            yield site
    finally:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", site.db_name], check=False)
        if not reuse:
            shutil.rmtree(site.venv, ignore_errors=True)  # 6 GB; pytest would keep three runs' worth


# A user with a meeting, its transcript and a recording, made through the application's own services.
SEED = """
import wave
from django.contrib.auth.models import User
from tests.factories import attach_recording, meeting_with_transcript
with wave.open("{wav}", "wb") as out:
    out.setnchannels(1); out.setsampwidth(2); out.setframerate(16000); out.writeframes(bytes(32000))
alice = User.objects.create_user("alice", password="alice-password-1")
User.objects.create_user("carol", password="carol-password-1")
attach_recording(meeting_with_transcript(alice, title="Ward round"), "{wav}")
"""


def test_the_offline_install_holds_exactly_the_pinned_packages(site):
    frozen = subprocess.run([str(site.venv / "bin/python"), "-m", "pip", "freeze"], capture_output=True, text=True, check=True).stdout
    for pin in ("torch==2.11.0", "torchaudio==2.11.0", "Django==5.2.19", "daphne==4.2.3", "celery==5.7.0"):
        assert pin in frozen.splitlines(), pin
    assert "pytest" not in frozen  # test-only packages stay out of a server


def test_the_systemd_units_are_valid_and_start_programs_the_install_made(site, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        text = unit.read_text().replace("/opt/scribe/venv", str(site.venv)).replace("/opt/scribe/app", str(REPO))
        (tmp_path / unit.name).write_text(text)
        units.append(str(tmp_path / unit.name))
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", *units], capture_output=True, text=True,
                              env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr
    assert {Path(u).name for u in units} >= {"scribe-web.service", "scribe-worker-gpu.service", "scribe-worker-cpu.service",
                                              "scribe-beat.service", "scribe-captions.service", "scribe.target"}


def test_plain_http_is_redirected_to_https(site):
    status, headers, _ = Browser(site).request(f"http://localhost:{site.http_port}/accounts/login/")
    assert status == 301 and headers["Location"] == "https://localhost/accounts/login/"


def test_a_user_signs_in_over_https_and_sees_the_meeting(site):
    browser = Browser(site)
    status, headers, _ = browser.sign_in("alice", "alice-password-1")
    assert status == 302, headers
    assert "Strict-Transport-Security" in headers
    assert all(c.secure for c in browser.cookies if c.name in ("sessionid", "csrftoken"))
    status, _, body = browser.request("/")
    assert status == 200 and b"Ward round" in body


def test_static_files_come_from_nginx(site):
    status, headers, body = Browser(site).request("/static/frontend/css/scribe.css")
    assert status == 200 and len(body) > 100
    assert "Expires" in headers  # set by the nginx location, not by Django


def test_the_live_caption_socket_opens_through_nginx_with_an_allowed_origin(site):
    browser = Browser(site)
    browser.sign_in("alice", "alice-password-1")
    meeting_id = site.manage("shell", "-v", "0", "-c", "from meetings.models import Meeting; print(Meeting.objects.get().pk)").stdout.strip()
    path = f"/ws/meetings/{meeting_id}/live/captions"
    cookie = f"sessionid={browser.cookie('sessionid')}"
    socket = WebSocket(site, path, cookie=cookie, origin=site.base)
    try:
        assert socket.status == 101
        assert socket.receive_json()["type"] == "status"
    finally:
        socket.close()
    foreign = WebSocket(site, path, cookie=cookie, origin="https://evil.example")
    assert foreign.status == 403
    foreign.close()


def test_a_recording_is_sent_by_nginx_only_after_the_access_check(site):
    ids = site.manage("shell", "-v", "0", "-c", "from meetings.models import Recording as R; r = R.objects.get(); print(r.meeting_id, r.pk, r.file.name)").stdout.split()
    url = f"/meetings/{ids[0]}/recordings/{ids[1]}/audio"
    owner = Browser(site)
    owner.sign_in("alice", "alice-password-1")
    status, headers, body = owner.request(url, headers={"Range": "bytes=0-3"})
    assert status == 206 and body == b"RIFF"
    assert headers["Content-Range"].startswith("bytes 0-3/")
    assert headers["Cache-Control"] == "private, no-store"
    assert "X-Accel-Redirect" not in headers

    outsider = Browser(site)
    outsider.sign_in("carol", "carol-password-1")
    assert outsider.request(url)[0] == 404
    assert owner.request(f"/protected-media/{ids[2]}")[0] == 404  # the internal location is not reachable


def test_an_upload_over_the_limit_is_refused_by_nginx(site):
    status, _, _ = Browser(site).request("/meetings/new", data=b"x" * (2 * 1024 * 1024))
    assert status == 413


def test_backup_wipe_and_restore_bring_back_the_same_transcript(site, tmp_path):
    backup = site.script("backup.sh", str(tmp_path))
    assert backup.returncode == 0, backup.stderr
    folder = Path(backup.stdout.strip().splitlines()[-1])
    manifest = (folder / "MANIFEST").read_text()
    assert "rows_meetings_segment=3" in manifest and "media_files=1" in manifest

    # A restore never lands on data that is still there.
    refused = site.script("restore.sh", str(folder))
    assert refused.returncode != 0 and "already holds" in refused.stderr

    corrupt = tmp_path / "corrupt"
    shutil.copytree(folder, corrupt)
    with open(corrupt / "database.dump", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff\xff\xff\xff")
    refused = site.script("restore.sh", str(corrupt))
    assert refused.returncode != 0 and "SHA256SUMS" in refused.stderr

    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--force", site.db_name], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", "-O", "scribe", site.db_name], check=True)
    shutil.rmtree(site.media_root)
    restored = site.script("restore.sh", str(folder))
    assert restored.returncode == 0, restored.stderr

    browser = Browser(site)
    assert browser.sign_in("alice", "alice-password-1")[0] == 302
    status, _, body = browser.request("/search?q=" + PHRASE.replace(" ", "+"))
    assert status == 200 and b"Ward round" in body and b"kidney" in body
    ids = site.manage("shell", "-v", "0", "-c", "from meetings.models import Recording as R; r = R.objects.get(); print(r.meeting_id, r.pk)").stdout.split()
    status, _, body = browser.request(f"/meetings/{ids[0]}/recordings/{ids[1]}/audio", headers={"Range": "bytes=0-3"})
    assert status == 206 and body == b"RIFF"
