"""``tierline doctor``, run through Typer's CliRunner with the settings in the environment: a
healthy installation (its database on SQLite and PostgreSQL, the access token tried at a fake
Graph API on 127.0.0.1) passes with exit 0; a database that cannot be reached or is behind, a
flow that does not validate, a token the Graph API refuses and placeholder secrets are each a
``problem`` line saying what to do, and exit 1; an unreachable Graph API is said plainly."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tierline.cli import app
from tierline.nlu.flow import DEFAULT_FLOW_PATH
from tierline.serving.api_keys import create_api_key
from tierline.serving.doctor import Report, check_settings
from tierline.serving.settings import Settings
from tierline.serving.storage.db import Database
from tierline.serving.tickets import create_agent
from tests.net import free_port
from tests.serving.fakes import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraphAPI

STRONG = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphAPI]:
    fake = FakeGraphAPI()
    yield fake
    fake.close()


def prepare(database_url: str) -> str:
    """``database_url`` migrated, with an API key and an admin agent (every team worked)."""
    db = Database(database_url)
    db.migrate()
    create_api_key(db, "bot runtime", ["decide"])
    create_agent(db, "Doc", [], admin=True)
    db.dispose()
    return database_url


@pytest.fixture(scope="module")
def sqlite_database(tmp_path_factory) -> str:
    """A ready SQLite database for the checks that do not depend on the backend."""
    return prepare(f"sqlite:///{tmp_path_factory.mktemp('doctor') / 'tierline.db'}")


def production_like(monkeypatch, database_url: str, graph: FakeGraphAPI) -> None:
    """The environment of a healthy installation: every secret set and long."""
    for name in [n for n in os.environ if n.startswith("TIERLINE_")]:
        monkeypatch.delenv(name)
    env = {"TIERLINE_DATABASE_URL": database_url, "TIERLINE_WHATSAPP_APP_SECRET": STRONG[:32],
           "TIERLINE_WHATSAPP_VERIFY_TOKEN": STRONG, "TIERLINE_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
           "TIERLINE_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
           "TIERLINE_WHATSAPP_API_BASE": graph.url, "TIERLINE_CONSOLE_SECRET": STRONG,
           "TIERLINE_CONSOLE_SECURE_COOKIE": "true", "TIERLINE_WORKERS": "2"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture()
def healthy(sqlite_database, graph, monkeypatch) -> None:
    """A healthy installation on SQLite, for each test to break one thing of."""
    production_like(monkeypatch, sqlite_database, graph)


def doctor(monkeypatch, code: int, **changes: str | None) -> list[str]:
    """``tierline doctor`` with the environment changed (None unsets); its lines."""
    for name, value in changes.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["doctor"])
    lines = result.stdout.splitlines()
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert all(line.split()[0] in ("ok", "warning", "problem") for line in lines[:-1]), lines
    return lines


def found(lines: list[str], level: str, check: str, *words: str) -> str:
    """The one line of ``level`` in ``check`` that holds every one of ``words``."""
    hits = [line for line in lines if line.split()[0] == level
            and line.split()[1] == f"{check}:" and all(w in line for w in words)]
    assert len(hits) == 1, (level, check, words, lines)
    return hits[0]


def test_a_healthy_installation_passes(database_url, graph, monkeypatch):
    production_like(monkeypatch, prepare(database_url), graph)
    lines = doctor(monkeypatch, 0)
    assert lines[-1] == "0 problem(s), 0 warning(s)", lines
    found(lines, "ok", "settings", "secrets set")
    found(lines, "ok", "database", "reachable, schema at this release's head")
    found(lines, "ok", "graph", "accepts the access token", PHONE_NUMBER_ID, "+1 555-0100",
          "Test Shop")
    found(lines, "ok", "flow", "is valid", "teams billing, general, technical")
    found(lines, "ok", "models", "languages served by a bundle trained on them", "en (nlu)",
          "it (nlu-multilingual)")
    assert not any(ACCESS_TOKEN in line or STRONG in line for line in lines)


def test_a_broken_database_url_is_a_problem_without_its_password(healthy, monkeypatch, tmp_path):
    url = f"postgresql://tierline:hunter2secret@127.0.0.1:{free_port()}/tierline"
    lines = doctor(monkeypatch, 1, TIERLINE_DATABASE_URL=url)
    line = found(lines, "problem", "database", "cannot use postgresql://tierline:***@127.0.0.1",
                 "check TIERLINE_DATABASE_URL")
    assert "hunter2secret" not in "\n".join(lines) and "refused" in line.lower()
    found(lines, "ok", "graph", "accepts the access token")  # the other checks still ran

    missing = doctor(monkeypatch, 1, TIERLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'none.db'}")
    found(missing, "problem", "database", "no database file", "`tierline db upgrade` creates it")
    assert not (tmp_path / "none.db").exists()  # the doctor writes nothing

    behind = Database(f"sqlite:///{tmp_path / 'old.db'}")
    behind.migrate("0007")
    behind.dispose()
    lines = doctor(monkeypatch, 1, TIERLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'old.db'}")
    found(lines, "problem", "database", "at revision 0007", "run `tierline db upgrade`")


def test_a_flow_that_does_not_validate_is_a_problem(healthy, monkeypatch, tmp_path):
    flow = tmp_path / "bot"
    shutil.copytree(Path(DEFAULT_FLOW_PATH).parent, flow)
    text = (flow / "bot.yaml").read_text()
    (flow / "bot.yaml").write_text(text.replace("brand:", "brandname:", 1))
    lines = doctor(monkeypatch, 1, TIERLINE_FLOW_PATH=str(flow / "bot.yaml"))
    found(lines, "problem", "flow", "brand: Field required", "fix the file")
    found(lines, "ok", "database", "reachable")


def test_a_token_the_graph_api_refuses_is_a_problem_and_an_unreachable_one_a_warning(
        healthy, monkeypatch):
    lines = doctor(monkeypatch, 1, TIERLINE_WHATSAPP_ACCESS_TOKEN="EAAG-a-revoked-token-0123")
    found(lines, "problem", "graph", "refused the access token (HTTP 401, Meta code 190",
          "generate a new permanent token")
    assert "EAAG-a-revoked-token" not in "\n".join(lines)
    lines = doctor(monkeypatch, 1, TIERLINE_WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN,
                   TIERLINE_WHATSAPP_PHONE_NUMBER_ID="999000")
    found(lines, "problem", "graph", "HTTP 400", "check TIERLINE_WHATSAPP_PHONE_NUMBER_ID")

    lines = doctor(monkeypatch, 0, TIERLINE_WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
                   TIERLINE_WHATSAPP_API_BASE=f"http://127.0.0.1:{free_port()}/v21.0")
    found(lines, "warning", "graph", "unreachable", "the access token was not checked")
    assert lines[-1] == "0 problem(s), 1 warning(s)"


def test_placeholder_short_and_half_set_secrets(healthy, monkeypatch):
    lines = doctor(monkeypatch, 1, TIERLINE_WHATSAPP_APP_SECRET="CHANGE_ME",
                   TIERLINE_CONSOLE_SECRET=None, TIERLINE_NOTIFY_WEBHOOK_URL="https://hooks.test/x")
    found(lines, "problem", "settings", "TIERLINE_WHATSAPP_APP_SECRET", "CHANGE_ME")
    found(lines, "problem", "settings", "TIERLINE_CONSOLE_SECRET is unset", "several processes")
    found(lines, "problem", "settings", "needs both TIERLINE_NOTIFY_WEBHOOK_URL and "
          "TIERLINE_NOTIFY_WEBHOOK_SECRET")
    broken = CliRunner().invoke(app, ["doctor"], env={"TIERLINE_NOTIFY_TIMEOUT_SECONDS": "100"})
    assert broken.exit_code == 1 and broken.stdout.startswith("problem  settings: the settings:")


def test_the_settings_check_alone(monkeypatch):
    for name in [n for n in os.environ if n.startswith("TIERLINE_")]:
        monkeypatch.delenv(name)

    def report(**values) -> list[str]:
        out = Report()
        check_settings(Settings(_env_file=None, **values), out)
        return [f.line() for f in out.findings]

    short = report(whatsapp_app_secret=STRONG, whatsapp_verify_token="hello",
                   console_secret=STRONG, console_secure_cookie=True)
    assert short == ["warning  settings: TIERLINE_WHATSAPP_VERIFY_TOKEN is short (5 characters, "
                     "fewer than 16), easy to guess: use `openssl rand -hex 32`, and the same "
                     "string in Meta's webhook settings"]
    half = report(whatsapp_access_token=STRONG, console_secret=STRONG)
    assert any("sending replies needs both" in line and "set TIERLINE_WHATSAPP_PHONE_NUMBER_ID"
               in line for line in half)
    placeholder_db = report(database_url="postgresql://tierline:CHANGE_ME@db/tierline",
                            console_secret=STRONG)
    assert any("TIERLINE_DATABASE_URL's password is still CHANGE_ME" in line
               for line in placeholder_db)
