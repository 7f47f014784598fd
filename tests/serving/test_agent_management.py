"""``tierline agents add / list / disable / enable / rotate-token / remove / audit``, run
through Typer's CliRunner in this process on the module's database (SQLite, and PostgreSQL
with ``TIERLINE_TEST_POSTGRES_URL``), and what they do to a running service over real HTTP on
127.0.0.1: a disabled agent's token and console session are refused at once, a rotated token
replaces the old one, and the agent's claimed tickets go back to the queue.

Also migration 0009 on a database whose agents share names (nothing stopped it before)."""

from __future__ import annotations

import json
import os
from datetime import datetime

import httpx
import pytest
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, column, insert, select, table
from typer.testing import CliRunner

from tierline.cli import app
from tierline.serving.storage.db import Database
from tierline.serving.storage.models import Ticket, utcnow
from tierline.serving.tickets import agent_for_token
from tierline.serving.tickets.agents import audit_log, disable_agent, list_agents, operator
from tests.serving.fakes import message


@pytest.fixture()
def tierline(database_url, monkeypatch):
    """``tierline ARGS`` in this process with TIERLINE_DATABASE_URL the module's database;
    asserts the exit code and returns the result (``stdout`` and ``stderr`` apart)."""
    for name in [n for n in os.environ if n.startswith("TIERLINE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TIERLINE_DATABASE_URL", database_url)
    runner = CliRunner()

    def run(*args: str, code: int = 0):
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, (args, result.stdout, result.stderr, result.exception)
        return result

    return run


def listed(tierline, *options: str) -> dict[str, dict]:
    """``tierline agents list`` by name (JSON lines)."""
    return {row["name"]: row for row in map(json.loads, tierline("agents", "list", *options)
                                            .stdout.splitlines())}


def audited(tierline, agent: str) -> list[dict]:
    """``tierline agents audit AGENT`` (JSON lines)."""
    return [json.loads(line) for line in tierline("agents", "audit", agent).stdout.splitlines()]


def test_add_checks_teams_against_the_flow_and_names_for_uniqueness(tierline):
    typo = tierline("agents", "add", "--name", "Vera", "--teams", "general,biling", code=1)
    assert "unknown team(s) 'biling'" in typo.stderr
    assert "the flow's teams are billing, general, technical" in typo.stderr
    no_team = tierline("agents", "add", "--name", "Vera", "--teams", " , ", code=1)
    assert "at least one team" in no_team.stderr
    assert "Vera" not in listed(tierline)

    added = tierline("agents", "add", "--name", "Vera", "--teams", "general,billing", "--by", "alice")
    token = added.stdout.strip()
    assert len(token) >= 40 and "\n" not in token and "shown once" in added.stderr
    for same in ("Vera", "vera", "  VERA "):
        taken = tierline("agents", "add", "--name", same, "--teams", "general", code=1)
        assert "exists already" in taken.stderr
    assert tierline("agents", "add", "--name", "12345", code=1).stderr.startswith("error: ")

    vera = listed(tierline)["Vera"]
    assert vera["teams"] == ["general", "billing"] and vera["status"] == "active"
    assert vera["last_change"]["by"] == "alice" and vera["last_change"]["action"] == "added"
    everything = tierline("agents", "list").stdout + tierline("agents", "audit").stdout
    assert token not in everything and "sha256" not in everything


def test_every_change_is_audited_with_who_what_and_when(tierline, database_url):
    first = tierline("agents", "add", "--name", "Walt", "--teams", "technical", "--by", "ops")
    old_id = listed(tierline)["Walt"]["id"]
    assert tierline("agents", "disable", "Walt", "--by", "alice").stdout.startswith(
        f"agent {old_id} (Walt) disabled")
    again = tierline("agents", "disable", "walt")
    assert "already" in again.stdout  # nothing changed, nothing audited
    assert listed(tierline)["Walt"]["status"] == "disabled"
    tierline("agents", "enable", str(old_id))
    rotated = tierline("agents", "rotate-token", "Walt", "--expires-in-days", "30")
    new_token = rotated.stdout.strip()
    assert new_token and new_token != first.stdout.strip() and "new token" in rotated.stderr
    db = Database(database_url)
    try:
        assert agent_for_token(db, first.stdout.strip()) is None
        assert agent_for_token(db, new_token).name == "Walt"
        tierline("agents", "remove", "Walt", "--by", "bob")
        assert agent_for_token(db, new_token) is None
    finally:
        db.dispose()
    assert "Walt" not in listed(tierline)
    assert listed(tierline, "--all")["Walt"]["status"] == "removed"
    # The name is free again; the old agent stays reachable by id.
    tierline("agents", "add", "--name", "Walt", "--teams", "general")
    assert listed(tierline)["Walt"]["id"] != old_id
    assert "no agent 'Nobody'" in tierline("agents", "disable", "Nobody", code=1).stderr

    log = audited(tierline, str(old_id))
    assert [(e["action"], e["by"]) for e in log] == [
        ("added", "ops"), ("disabled", "alice"), ("enabled", operator()),
        ("token_rotated", operator()), ("removed", "bob")]
    assert all(e["agent_id"] == old_id and e["agent"] == "Walt" for e in log)
    assert log[0]["details"] == {"teams": ["technical"], "admin": False, "expires_at": None}
    assert log[3]["details"]["expires_at"] is not None
    times = [datetime.fromisoformat(e["at"]) for e in log]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert [e["action"] for e in audited(tierline, "Walt")] == ["added"]  # the new Walt


def test_a_disabled_or_rotated_token_is_refused_over_http_at_once(tierline, service):
    customer = "447700909301"
    token = tierline("agents", "add", "--name", "Hana", "--teams", "general").stdout.strip()
    api = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{service.url}/v1/agent/tickets", headers=api).status_code == 200
    service.say(message(text="agent please", customer=customer))
    ticket = service.wait_ticket(customer)
    claim = httpx.post(f"{service.url}/v1/agent/tickets/{ticket}/claim", headers=api, timeout=10)
    assert claim.status_code == 200, claim.text
    with httpx.Client(base_url=service.url, timeout=10) as console:
        assert console.post("/console/login", data={"token": token}).status_code == 303
        assert console.get("/console/queue").status_code == 200

        out = tierline("agents", "disable", "Hana").stdout
        assert "1 claimed ticket(s) back in the queue" in out
        assert httpx.get(f"{service.url}/v1/agent/tickets", headers=api).status_code == 401
        page = console.get("/console/queue")
        assert page.status_code == 303 and page.headers["location"] == "/console/login"
        assert console.post("/console/login", data={"token": token}).status_code == 401
    with service.services.db.session() as s:
        released = s.get(Ticket, ticket)
        assert (released.status, released.assigned_agent_id) == ("open", None)

    tierline("agents", "enable", "Hana")
    assert httpx.get(f"{service.url}/v1/agent/tickets", headers=api).status_code == 200
    with httpx.Client(base_url=service.url, timeout=10) as console:
        assert console.post("/console/login", data={"token": token}).status_code == 303
        new_token = tierline("agents", "rotate-token", "Hana").stdout.strip()
        assert httpx.get(f"{service.url}/v1/agent/tickets", headers=api).status_code == 401
        assert console.get("/console/queue").status_code == 303  # the session ended too
        assert httpx.get(f"{service.url}/v1/agent/tickets", timeout=10, headers={
            "authorization": f"Bearer {new_token}"}).status_code == 200


AGENTS = table("agents", column("id", Integer), column("name", String),
               column("token_sha256", String), column("teams", JSON), column("is_admin", Boolean),
               column("created_at", DateTime(timezone=True)))


def test_migration_0009_makes_names_unique_and_its_downgrade_keeps_disabled_agents_out(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    db.migrate("0008")
    with db.engine.begin() as c:
        for agent_id, name in ((1, "Gina"), (2, "gina"), (3, "Bruno"), (4, "Gina")):
            c.execute(insert(AGENTS).values(id=agent_id, name=name, token_sha256=f"{agent_id:064x}",
                                            teams=["general"], is_admin=False,
                                            created_at=utcnow()))
    db.migrate()
    assert [a["name"] for a in list_agents(db)] == ["Gina", "gina #2", "Bruno", "Gina #4"]
    assert [(e["action"], e["by"], e["details"]["from"]) for e in audit_log(db)] == [
        ("renamed", "migration 0009", "gina"), ("renamed", "migration 0009", "Gina")]
    disable_agent(db, "Bruno", by="tests")
    db.downgrade("0008")
    with db.engine.connect() as c:
        hashes = dict(c.execute(select(AGENTS.c.id, AGENTS.c.token_sha256)).all())
    assert hashes[1] == f"{1:064x}" and hashes[3] != f"{3:064x}"  # Bruno's token is dead
    db.dispose()
