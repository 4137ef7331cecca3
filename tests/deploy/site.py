"""An installed Scribe site for the deployment tests: the offline venv's Daphne behind Debian's nginx with TLS.

Small HTTPS and WebSocket clients live here too, so the tests speak to nginx exactly as a browser would.
"""
import http.cookiejar
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.raw_websocket import RawWebSocket
from tests.servers import REPO, free_port, stop_process, wait_for_port

DEPLOY = REPO / "deploy"


@dataclass
class Site:
    root: Path  # everything of this site: env file, venv, media, static, TLS, nginx
    venv: Path
    env_file: Path
    https_port: int
    http_port: int
    daphne_port: int
    db_name: str
    cert: Path
    logs: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"https://localhost:{self.https_port}"

    @property
    def media_root(self) -> Path:
        return self.root / "media"

    def env(self) -> dict:
        """The process environment the services get from the environment file (as systemd would)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRIBE_", "DJANGO_"))}
        env["SCRIBE_EGRESS_GUARD_LOG"] = os.environ.get("SCRIBE_EGRESS_GUARD_LOG", "")
        for line in self.env_file.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
        env.update(DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
        return env

    def manage(self, *args: str, check=True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.venv / "bin/python"), "manage.py", *args], cwd=REPO, env=self.env(),
                              capture_output=True, text=True, check=check, timeout=180)

    def script(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(DEPLOY / name), *args, "--env", str(self.env_file), "--app", str(REPO),
                               "--venv", str(self.venv)], capture_output=True, text=True, timeout=300, env=self.env())


def write_env_file(root: Path, *, db_name: str, run_id: str, https_port: int, http_port: int, daphne_port: int) -> Path:
    values = {
        "SCRIBE_VAR_DIR": root / "var",
        "SCRIBE_MEDIA_ROOT": root / "media",
        "SCRIBE_STATIC_ROOT": root / "static",
        "SCRIBE_ALLOWED_HOSTS": "localhost",
        "SCRIBE_CSRF_TRUSTED_ORIGINS": f"https://localhost:{https_port}",
        "SCRIBE_HTTPS": "true",
        "SCRIBE_DB_NAME": db_name,
        "SCRIBE_DB_USER": "scribe",
        "SCRIBE_CHANNEL_PREFIX": f"scribe-deploy-{run_id}",
        "SCRIBE_CELERY_BROKER_URL": "redis://127.0.0.1:6379/3",
        "SCRIBE_MEDIA_ACCEL_REDIRECT": "/protected-media/",
        "SCRIBE_RECORDING_UPLOAD_MAX_MB": "1",
        "SCRIBE_TLS_CERT": root / "tls/scribe.crt",
        "SCRIBE_TLS_KEY": root / "tls/scribe.key",
        "SCRIBE_DAPHNE_ADDRESS": f"127.0.0.1:{daphne_port}",
        "SCRIBE_NGINX_HTTP_PORT": http_port,
        "SCRIBE_NGINX_HTTPS_PORT": https_port,
    }
    path = root / "scribe.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def make_self_signed_cert(tls: Path) -> Path:
    tls.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(tls / "scribe.key"),
         "-out", str(tls / "scribe.crt")], check=True, capture_output=True)
    return tls / "scribe.crt"


def unit_command(unit: str, *, venv: Path, port: int | None = None) -> list[str]:
    """The ExecStart of one of deploy/systemd's units, with this site's venv (and port) in place of the server's."""
    line = next(line for line in (DEPLOY / "systemd" / unit).read_text().splitlines() if line.startswith("ExecStart="))
    args = shlex.split(line.split("=", 1)[1].replace("/opt/scribe/venv", str(venv)).replace("%%", "%"))
    if port is not None:
        args[args.index("--port") + 1] = str(port)
    return args


@contextmanager
def nginx(root: Path, env_file: Path, https_port: int):
    """Debian's nginx with the site rendered from `env_file` by deploy/render-nginx.sh; yields its folder."""
    nginx_dir = root / "nginx"
    nginx_dir.mkdir(exist_ok=True)
    rendered = subprocess.run(["bash", str(DEPLOY / "render-nginx.sh"), str(env_file)], check=True,
                              capture_output=True, text=True).stdout
    (nginx_dir / "scribe.conf").write_text(rendered)
    temp = "\n".join(f"  {kind}_temp_path {nginx_dir}/{kind}-temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (nginx_dir / "nginx.conf").write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {nginx_dir}/nginx.pid;
error_log {nginx_dir}/error.log info;
events {{ worker_connections 256; }}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log {nginx_dir}/access.log;
{temp}
  include {nginx_dir}/scribe.conf;
}}
""")
    with open(nginx_dir / "stderr.log", "w") as out:
        proc = subprocess.Popen([shutil.which("nginx"), "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf"),
                                 "-e", str(nginx_dir / "error.log")], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(https_port, proc, nginx_dir / "error.log")
        yield nginx_dir
    finally:
        stop_process(proc)


@contextmanager
def running(site: Site):
    """Daphne from the offline venv (as scribe-web.service runs it) and nginx with the rendered site."""
    daphne_log, nginx_dir = site.root / "daphne.log", site.root / "nginx"
    site.logs = {"daphne": daphne_log, "nginx": nginx_dir / "stderr.log", "nginx_error": nginx_dir / "error.log"}
    with open(daphne_log, "w") as out:
        daphne = subprocess.Popen(unit_command("scribe-web.service", venv=site.venv, port=site.daphne_port), cwd=REPO,
                                  env=site.env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(site.daphne_port, daphne, daphne_log)
        with nginx(site.root, site.env_file, site.https_port):
            yield site
    finally:
        stop_process(daphne)


class Browser:
    """Cookies, CSRF and no automatic redirects: what a browser does, over TLS checked against the site's cert."""

    def __init__(self, site: Site):
        self.site = site
        self.context = ssl.create_default_context(cafile=str(site.cert))
        self.cookies = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.context),
                                                  urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect)

    def request(self, url: str, *, data: bytes | None = None, headers: dict | None = None):
        """(status, headers, body) for a URL or a path on the site."""
        if url.startswith("/"):
            url = self.site.base + url
        request = urllib.request.Request(url, data=data, headers={"Referer": self.site.base + "/", **(headers or {})})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)

    def sign_in(self, username: str, password: str):
        self.request("/accounts/login/")
        body = urllib.parse.urlencode({"username": username, "password": password,
                                       "csrfmiddlewaretoken": self.cookie("csrftoken")}).encode()
        return self.request("/accounts/login/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})


class WebSocket(RawWebSocket):
    """A socket through the site's nginx (TLS), reading text messages."""

    def __init__(self, site: Site, path: str, *, cookie: str = "", origin: str | None = None):
        context = ssl.create_default_context(cafile=str(site.cert))
        sock = context.wrap_socket(socket.create_connection(("127.0.0.1", site.https_port), timeout=15), server_hostname="localhost")
        super().__init__(sock, host=f"localhost:{site.https_port}", path=path, origin=origin, cookie=cookie)

    def receive_json(self) -> dict:
        while True:
            opcode, payload = self.frame()
            if opcode == 0x1:
                return json.loads(payload)
            if opcode == 0x8:
                raise ConnectionError(f"closed with {int.from_bytes(payload[:2], 'big')}")


def new_site(root: Path, venv: Path, *, run_id: str) -> Site:
    https_port, http_port, daphne_port = free_port(), free_port(), free_port()
    db_name = f"scribe_deploy_{run_id}"
    env_file = write_env_file(root, db_name=db_name, run_id=run_id, https_port=https_port, http_port=http_port,
                              daphne_port=daphne_port)
    cert = make_self_signed_cert(root / "tls")
    return Site(root=root, venv=venv, env_file=env_file, https_port=https_port, http_port=http_port,
                daphne_port=daphne_port, db_name=db_name, cert=cert)
