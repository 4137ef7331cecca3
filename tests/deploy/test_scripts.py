"""The deploy scripts' refusals, which need no wheelhouse or site."""
import os
import subprocess

from tests.servers import REPO


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "deploy" / script), *args], capture_output=True, text=True, timeout=60)


def test_the_offline_install_refuses_a_damaged_wheelhouse_before_touching_anything(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    (wheelhouse / "wheels").mkdir(parents=True)
    (wheelhouse / "wheels" / "django-5.2.19-py3-none-any.whl").write_bytes(b"complete")
    subprocess.run("sha256sum wheels/*.whl > SHA256SUMS", shell=True, cwd=wheelhouse, check=True)
    (wheelhouse / "wheels" / "django-5.2.19-py3-none-any.whl").write_bytes(b"cut sho")
    done = run("install-offline.sh", str(wheelhouse), "--app", str(tmp_path / "app"), "--venv", str(tmp_path / "venv"),
               "--env", str(tmp_path / "none.env"))
    assert done.returncode == 1
    assert "does not match its SHA256SUMS" in done.stderr
    assert not (tmp_path / "venv").exists() and not (tmp_path / "app").exists()


def test_the_offline_install_names_what_is_missing(tmp_path):
    done = run("install-offline.sh", str(tmp_path))
    assert done.returncode == 1 and "has no SHA256SUMS" in done.stderr


def test_a_restore_refuses_a_folder_that_is_not_a_backup(tmp_path):
    (tmp_path / "database.dump").write_bytes(b"not a dump")
    done = run("restore.sh", str(tmp_path))
    assert done.returncode == 1 and "has no SHA256SUMS" in done.stderr


def test_the_nginx_site_renders_every_value(tmp_path):
    env = tmp_path / "scribe.env"
    env.write_text("SCRIBE_ALLOWED_HOSTS=scribe.example.internal\nSCRIBE_REQUEST_BODY_MAX_KB=512\nSCRIBE_UPLOAD_PIECE_MB=4\nSCRIBE_MEDIA_ROOT=/srv/scribe media\n")
    site = run("render-nginx.sh", str(env)).stdout
    assert "{{" not in site
    assert "server_name scribe.example.internal;" in site and "    client_max_body_size 512k;" in site
    upload = site.split("recordings/(upload|uploads/[0-9a-f]{32})$\" {", 1)[1].split("}", 1)[0]
    assert "client_max_body_size 4160k;" in upload  # one piece plus its framing, on the upload routes only
    assert "location /protected-media/ {\n        internal;" in site
    assert "upstream scribe_daphne {" in site and "    server 127.0.0.1:8000;\n" in site  # one Daphne unless told


def test_the_nginx_site_spreads_connections_over_every_daphne_process(tmp_path):
    env = tmp_path / "scribe.env"
    env.write_text("SCRIBE_DAPHNE_ADDRESS=127.0.0.1:8000, 127.0.0.1:8001,127.0.0.1:8002\n")
    upstream = run("render-nginx.sh", str(env)).stdout.split("upstream scribe_daphne {", 1)[1].split("}", 1)[0]
    assert "least_conn;" in upstream
    assert "server 127.0.0.1:8000; server 127.0.0.1:8001; server 127.0.0.1:8002;" in upstream


def test_the_cpu_profile_says_so_when_its_torch_index_cannot_be_reached(tmp_path):
    done = subprocess.run(["bash", str(REPO / "deploy/build-wheelhouse.sh"), "--profile", "cpu", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "SCRIBE_TORCH_CPU_INDEX": "http://127.0.0.1:9/none"})
    assert done.returncode == 1 and "cannot be reached" in done.stderr
    assert not list(tmp_path.glob("wheels/*"))
