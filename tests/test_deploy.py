"""The deployment guide (README, "Deploying to production") and its files in ``deploy/``, checked
as far as this machine allows: every setting they name exists, the example env file loads, the
systemd unit parses (and passes ``systemd-analyze verify`` where systemd is installed), the
nginx site passes ``nginx -t`` and carries real requests to a real ``tierline serve`` (where
nginx is installed; the suite does not install it), the Caddyfile adapts (where caddy is
installed), the backup script's dump restores (with ``TIERLINE_TEST_POSTGRES_URL``),
``tierline db`` upgrades and downgrades as the guide says, and the service believes
X-Forwarded-* only from ``TIERLINE_FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tierline.serving.body_limit import limits_from
from tests.net import free_port, wait_ready
from tierline.serving.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NGINX_SITE = DEPLOY / "nginx" / "tierline.conf"
CADDYFILE = DEPLOY / "caddy" / "Caddyfile"
UNIT = DEPLOY / "systemd" / "tierline.service"
ENV_EXAMPLE = DEPLOY / "tierline.env.example"
BACKUP = DEPLOY / "postgres" / "tierline-backup.sh"
SCHEMA = DEPLOY / "schema.py"  # replaced by `tierline db`
SETTING = re.compile(r"\bTIERLINE_[A-Z0-9_]*[A-Z0-9]\b")
SITE = "tierline.example.com"
VERIFY_TOKEN = "deploy-test-verify-token"
TIMEOUT = 10


def guide() -> str:
    """The README's "Deploying to production" section."""
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Deploying to production")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def env_file(path: Path, commented: bool = False) -> dict[str, str]:
    """``NAME=value`` lines of a systemd EnvironmentFile (with ``commented``: also the
    ``#NAME=value`` lines, the optional settings it shows switched off)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if commented and re.match(r"#TIERLINE_\w+=", line):
            line = line[1:]
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def test_every_setting_the_guide_and_its_files_name_is_a_real_setting():
    fields = {f"TIERLINE_{name.upper()}" for name in Settings.model_fields}
    named: dict[str, set[str]] = {}
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in sorted(DEPLOY.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}
    texts["README.md (Deploying to production)"] = guide()
    for where, text in texts.items():
        for name in SETTING.findall(text):
            named.setdefault(name, set()).add(where)
    unknown = {name: sorted(where) for name, where in named.items() if name not in fields}
    assert not unknown, f"not fields of serving.settings.Settings: {unknown}"
    assert len(named) >= 25, sorted(named)  # the guide names the production settings


def test_the_example_env_file_loads_into_settings(monkeypatch):
    for name in [n for n in os.environ if n.startswith("TIERLINE_")]:
        monkeypatch.delenv(name)
    for commented in (False, True):  # as shipped, and with every optional line switched on
        values = env_file(ENV_EXAMPLE, commented)
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        settings = Settings(_env_file=None)
        assert settings.database_url.startswith("postgresql://")
        assert settings.host == "127.0.0.1" and settings.workers == 2
        assert settings.webhook_enabled and settings.sending_enabled
        assert settings.console_secure_cookie and settings.console_secret is not None
        assert settings.forwarded_allow_ips == "127.0.0.1,::1"
    # Secrets are placeholders: nobody ships a real one by copying the example.
    for name in ("APP_SECRET", "VERIFY_TOKEN", "ACCESS_TOKEN", "PHONE_NUMBER_ID"):
        assert values[f"TIERLINE_WHATSAPP_{name}"] == "CHANGE_ME"
    assert values["TIERLINE_CONSOLE_SECRET"] == "CHANGE_ME"
    assert ":CHANGE_ME@" in values["TIERLINE_DATABASE_URL"]


def nginx_body_limits() -> dict[str, int]:
    """client_max_body_size of the TLS server ("/") and of each location that sets its own."""
    sizes, location = {}, "/"
    units = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    for line in NGINX_SITE.read_text().splitlines():
        if m := re.match(r"\s*location\s+(?:=\s*)?(\S+)\s*\{", line):
            location = m.group(1)
        elif re.match(r"\s*}\s*$", line) and line.startswith("    }"):
            location = "/"
        if m := re.match(r"\s*client_max_body_size\s+(\d+)([kKmMgG]?);", line):
            sizes[location] = int(m.group(1)) * units[m.group(2).lower()]
    return sizes


def test_the_proxies_body_limits_are_the_services():
    default, per_path = limits_from(Settings(_env_file=None))
    assert default == int(env_file(ENV_EXAMPLE)["TIERLINE_MAX_BODY_BYTES"])
    assert nginx_body_limits() == {"/": default, "/v1/analyze": per_path["/v1/analyze"]}
    caddy = CADDYFILE.read_text()
    assert re.search(r"@other not path /v1/analyze\s+request_body @other \{\s+max_size 1MiB", caddy)
    assert default == 1024 ** 2
    assert f"max_size {per_path['/v1/analyze']}B" in caddy


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_systemd_unit_runs_tierline_serve_unprivileged_drained_and_restarted():
    parsed = unit()
    service = parsed["Service"]
    assert service["ExecStart"].endswith("/bin/tierline serve")
    assert service["User"] not in ("", "root") and service["Group"] not in ("", "root")
    assert service["EnvironmentFile"] == "/etc/tierline/tierline.env"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # uvicorn's rolling restart
    assert service["KillSignal"] == "SIGTERM" and service["KillMode"] == "mixed"
    assert int(service["TimeoutStopSec"]) >= 75  # 20 s requests + the drains' bounds
    assert service["Restart"] == "always"
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert service[hardening] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["WorkingDirectory"] == f"/var/lib/{service['StateDirectory']}"
    assert parsed["Unit"]["Description"] and parsed["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    # verify wants ExecStart to exist: this checkout's tierline stands in for /opt/tierline's.
    tierline = Path(sys.executable).parent / "tierline"
    text = UNIT.read_text()
    assert text.count("/opt/tierline/.venv/bin/tierline") == 1
    copy = tmp_path / "tierline.service"
    copy.write_text(text.replace("/opt/tierline/.venv/bin/tierline",
                                 str(tierline if tierline.exists() else "/bin/true")))
    # 0.1 s on a quiet machine; it once passed 10 s beside a loaded test run.
    out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                         text=True, timeout=6 * TIMEOUT)
    about_it = [line for line in out.stderr.splitlines() if "tierline.service" in line]
    assert out.returncode == 0 and not about_it, out.stderr


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy not installed")
def test_the_caddyfile_adapts_and_validates(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}
    out = subprocess.run(["caddy", "adapt", "--config", str(CADDYFILE), "--validate"],
                         capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert out.returncode == 0, out.stderr
    assert '"upstreams":[{"dial":"127.0.0.1:8000"}]' in out.stdout.replace(" ", "")


# --- the database: `tierline db` and the backup script ----------------------------------------

def tierline_db(monkeypatch, database_url: str, *args: str) -> tuple[int, str]:
    """``tierline db ARGS`` with TIERLINE_DATABASE_URL (Typer's CliRunner, in this process:
    quick); its exit code and output."""
    from typer.testing import CliRunner

    from tierline.cli import app

    for name in [n for n in os.environ if n.startswith("TIERLINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TIERLINE_DATABASE_URL", database_url)
    monkeypatch.chdir(ROOT)  # no .env file here
    result = CliRunner().invoke(app, ["db", *args])
    return result.exit_code, result.stdout + result.stderr


def test_tierline_db_upgrades_downgrades_and_an_older_release_refuses_a_newer_schema(
        tmp_path, monkeypatch):
    import sqlalchemy
    from alembic.script import ScriptDirectory

    from tierline.serving.storage.db import MIGRATIONS, Database

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    url = f"sqlite:///{tmp_path / 'tierline.db'}"
    assert tierline_db(monkeypatch, url, "current") == (
        0, f"database at no revision (empty); this release's head is {head}\n")
    code, out = tierline_db(monkeypatch, url, "upgrade")
    assert code == 0 and out.startswith(f"database at {head};")
    code, out = tierline_db(monkeypatch, url, "downgrade", "0004")
    assert code == 0 and out.startswith("database at 0004;")
    assert tierline_db(monkeypatch, url, "upgrade")[1].startswith(f"database at {head};")
    # A release older than the schema (its migrations lack the database's revision) stops at
    # its start-up migration: the reason a rollback downgrades first.
    db = Database(url)
    with db.engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(Exception, match="Can't locate revision identified by '9999'"):
        db.migrate()
    db.dispose()
    assert tierline_db(monkeypatch, url, "upgrade") == (
        1, "error: Can't locate revision identified by '9999'\n")
    assert tierline_db(monkeypatch, url, "downgrade")[0] == 2  # the revision is required
    code, out = tierline_db(monkeypatch, "postgresql://nobody@127.0.0.1:9/none", "current")
    assert code == 1 and out.startswith("error: ") and "127.0.0.1" in out


def test_the_guide_upgrades_and_rolls_back_with_tierline_db():
    text = guide()
    for command in ("db current", "db upgrade", "db downgrade 0005"):
        assert f".venv/bin/tierline {command}" in text or f"tl {command}" in text, command
    commands = "".join(re.findall(r"```sh\n(.*?)```", text, re.S))
    assert "tl db upgrade" in commands and "schema.py" not in commands and not SCHEMA.exists()


POSTGRES_URL = os.environ.get("TIERLINE_TEST_POSTGRES_URL")


@pytest.mark.skipif(not (POSTGRES_URL and shutil.which("pg_dump") and shutil.which("pg_restore")),
                    reason="needs TIERLINE_TEST_POSTGRES_URL and pg_dump/pg_restore")
def test_the_backup_script_makes_a_dump_that_restores_into_an_empty_database(tmp_path):
    import sqlalchemy
    from alembic.script import ScriptDirectory

    from tierline.serving.api_keys import create_api_key
    from tierline.serving.storage.db import MIGRATIONS, Database

    admin = sqlalchemy.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"),
                                     isolation_level="AUTOCOMMIT")
    names = [f"tierline_backup_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        source = Database(f"{base}/{names[0]}")
        source.migrate()
        create_api_key(source, "kept-by-the-backup", ["decide"])
        source.dispose()
        # The URL as TIERLINE_DATABASE_URL may write it (SQLAlchemy's driver name).
        url = f"postgresql+psycopg://{base.split('://', 1)[1]}/{names[0]}"
        out = subprocess.run(["sh", str(BACKUP), url], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "BACKUP_DIR": str(tmp_path / "backups")})
        assert out.returncode == 0, out.stderr
        dump = Path(out.stdout.strip())
        assert dump.parent == tmp_path / "backups" and dump.name.endswith(".dump")
        assert (dump.stat().st_mode & 0o077) == 0  # readable by its owner only
        restored = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname",
                                   f"{base}/{names[1]}", str(dump)], capture_output=True,
                                  text=True, timeout=60)
        assert restored.returncode == 0, restored.stderr
        target = Database(f"{base}/{names[1]}")
        with target.engine.connect() as conn:
            version = conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version"))\
                .scalar()
            keys = conn.execute(sqlalchemy.text("SELECT name FROM api_keys")).scalars().all()
        target.migrate()  # a restored database is one the service starts on
        target.dispose()
        assert version == ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert keys == ["kept-by-the-backup"]
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- a real `tierline serve` behind the documented header conventions --------------------------

class Served:
    def __init__(self, url: str, port: int, log: Path, database_url: str) -> None:
        self.url, self.port, self.log, self.database_url = url, port, log, database_url

    def agent_token(self) -> str:
        """A console agent, made as `tierline agents add` makes one."""
        from tierline.serving.tickets import create_agent
        from tierline.serving.storage.db import Database

        db = Database(self.database_url)
        try:
            return create_agent(db, f"deploy-{uuid.uuid4().hex[:6]}", ["general"], False, None)
        finally:
            db.dispose()


class Starting:
    """``python -m tierline serve`` with the proxy and console settings the guide documents, on
    SQLite, believing forwarded headers from 127.0.0.1 only; started before the first test of
    the module, so that its start-up (imports, models, migrations) overlaps the quick tests."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.database_url = f"sqlite:///{tmp / 'tierline.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TIERLINE_")}
        env.update(TIERLINE_DATABASE_URL=self.database_url, TIERLINE_PORT=str(self.port),
                   TIERLINE_LOG_LEVEL="INFO", TIERLINE_FORWARDED_ALLOW_IPS="127.0.0.1",
                   TIERLINE_CONSOLE_SECRET="deploy-test-console-secret",
                   TIERLINE_CONSOLE_SECURE_COOKIE="true",
                   TIERLINE_WHATSAPP_APP_SECRET="deploy-test-app-secret",
                   TIERLINE_WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
                   PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
        self.log = tmp / "serve.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "tierline", "serve"], cwd=tmp,
                                         env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def ready(self) -> Served:
        wait_ready(f"http://127.0.0.1:{self.port}", timeout=90)
        return Served(f"http://127.0.0.1:{self.port}", self.port, self.log, self.database_url)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)  # drains, like systemd's stop
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module", autouse=True)
def starting(request, tmp_path_factory) -> Iterator[Starting | None]:
    """The service, started at the module's first test when any selected test needs it."""
    if not any("served" in item.fixturenames for item in request.session.items
               if item.module is request.module):
        yield None
        return
    service = Starting(tmp_path_factory.mktemp("served"))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def served(starting) -> Served:
    return starting.ready()


def from_address(address: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (127.0.0.2: not the trusted proxy)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=TIMEOUT,
                        follow_redirects=False)


def can_bind(address: str) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, 0))
            return True
        except OSError:
            return False


def sign_in(client: httpx.Client, url: str, token: str, forwarded_proto: str | None,
            forwarded_for: str = "203.0.113.7") -> httpx.Response:
    """The console's sign-in form as a browser posts it to https://tierline.example.com."""
    headers = {"Host": SITE, "Origin": f"https://{SITE}", "X-Forwarded-For": forwarded_for}
    if forwarded_proto:
        headers["X-Forwarded-Proto"] = forwarded_proto
    return client.post(f"{url}/console/login", data={"token": token}, headers=headers)


def test_forwarded_headers_are_believed_from_the_configured_proxy_only(served):
    assert httpx.get(f"{served.url}/healthz", timeout=TIMEOUT).json()["status"] == "ok"
    token = served.agent_token()
    with from_address("127.0.0.1") as proxy:
        # The console compares the form's Origin with scheme://Host: https only when the
        # proxy says so. Without X-Forwarded-Proto the form is refused as cross-origin.
        assert sign_in(proxy, served.url, "", None).status_code == 403
        assert sign_in(proxy, served.url, "", "https").status_code == 401  # origin fine, no token
        signed_in = sign_in(proxy, served.url, token, "https", forwarded_for="203.0.113.8")
        assert signed_in.status_code == 303, signed_in.text
        cookie = signed_in.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "path=/console" in cookie
    if can_bind("127.0.0.2"):
        with from_address("127.0.0.2") as stranger:
            assert stranger.get(f"{served.url}/healthz").status_code == 200
            # The same headers from another address are not believed.
            assert sign_in(stranger, served.url, token, "https",
                           forwarded_for="198.51.100.9").status_code == 403
    deadline = time.monotonic() + 5  # the access log names the client the proxy reported
    while "203.0.113.8" not in served.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = served.log.read_text()
    assert '203.0.113.8:0 - "POST /console/login HTTP/1.1" 303' in log
    assert "198.51.100.9" not in log


# --- nginx: the site file as shipped, in front of that service ---------------------------------

def self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={SITE}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=TIMEOUT)
    return cert, key


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} is not in the site file exactly once"
    return text.replace(old, new)


def nginx_wrapper(tmp: Path, site: str) -> Path:
    """An nginx.conf of its own (pid, logs, temp files in tmp) that includes ``site``."""
    (tmp / "site.conf").write_text(site)
    temp = "\n".join(f"    {kind}_temp_path {tmp / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    wrapper = tmp / "nginx.conf"
    wrapper.write_text(f"pid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'};\n"
                       f"events {{ worker_connections 64; }}\n"
                       f"http {{\n    access_log {tmp / 'access.log'};\n{temp}\n"
                       f"    include {tmp / 'site.conf'};\n}}\n")
    return wrapper


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                    reason="nginx (or openssl) not installed")
def test_nginx_passes_the_site_file_and_carries_meta_and_the_console_to_the_service(
        served, tmp_path):
    cert, key = self_signed(tmp_path)
    site = NGINX_SITE.read_text()
    site = replace_once(site, f"/etc/letsencrypt/live/{SITE}/fullchain.pem", str(cert))
    site = replace_once(site, f"/etc/letsencrypt/live/{SITE}/privkey.pem", str(key))
    checked = subprocess.run(["nginx", "-t", "-e", str(tmp_path / "error.log"), "-p",
                              str(tmp_path), "-c", str(nginx_wrapper(tmp_path, site))],
                             capture_output=True, text=True, timeout=TIMEOUT)
    assert checked.returncode == 0, checked.stderr

    # The same file on free ports of 127.0.0.1, proxying to the service of this module.
    https, http = free_port(), free_port()
    site = replace_once(site, "    listen 443 ssl;\n", f"    listen 127.0.0.1:{https} ssl;\n")
    site = replace_once(site, "    listen 80;\n", f"    listen 127.0.0.1:{http};\n")
    site = replace_once(site, "    listen [::]:443 ssl;\n", "")
    site = replace_once(site, "    listen [::]:80;\n", "")
    site = replace_once(site, "server 127.0.0.1:8000;", f"server 127.0.0.1:{served.port};")
    wrapper = nginx_wrapper(tmp_path, site)
    proc = subprocess.Popen(["nginx", "-e", str(tmp_path / "error.log"), "-p", str(tmp_path),
                             "-c", str(wrapper), "-g",
                             "daemon off; master_process off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not listening(https):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        base = f"https://127.0.0.1:{https}"
        host = {"Host": SITE}
        with httpx.Client(verify=False, timeout=TIMEOUT, headers=host) as client:
            assert client.get(f"{base}/healthz").json()["status"] == "ok"
            # Meta's verification of the callback URL, through the proxy.
            challenge = client.get(f"{base}/webhooks/whatsapp", params={
                "hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1158201444"})
            assert (challenge.status_code, challenge.text) == (200, "1158201444")
            # The console's sign-in: the browser's https Origin matches (Host + X-Forwarded-Proto).
            signed_in = client.post(f"{base}/console/login", data={"token": served.agent_token()},
                                    headers={"Origin": f"https://{SITE}"})
            assert signed_in.status_code == 303, signed_in.text
            assert "secure" in signed_in.headers["set-cookie"].lower()
            assert "max-age=31536000" in signed_in.headers["strict-transport-security"]
            # 1 MiB + 1 byte is refused by nginx before it reaches the service...
            big = client.post(f"{base}/v1/decide", content=b"x" * (1024 ** 2 + 1))
            assert big.status_code == 413 and "nginx" in big.text
            # ... while /v1/analyze's larger limit lets 2 MB through to the service's own checks.
            analyze = client.post(f"{base}/v1/analyze", content=b"x" * 2_000_000)
            assert analyze.status_code in (401, 422), analyze.text
        # /metrics: the host itself may scrape through the proxy, another address may not.
        with httpx.Client(verify=False, timeout=TIMEOUT, headers=host) as client:
            assert client.get(f"{base}/metrics").status_code == 200
        if can_bind("127.0.0.2"):
            outside = httpx.HTTPTransport(local_address="127.0.0.2", verify=False)
            with httpx.Client(timeout=TIMEOUT, headers=host, transport=outside) as outsider:
                assert outsider.get(f"{base}/metrics").status_code == 403
                assert outsider.get(f"{base}/healthz").status_code == 200
        plain = httpx.get(f"http://127.0.0.1:{http}/console/queue", headers=host, timeout=TIMEOUT)
        assert plain.status_code == 301
        assert plain.headers["location"] == f"https://{SITE}/console/queue"
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)
