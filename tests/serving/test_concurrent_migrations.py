"""Several service processes starting at once on a new database (``tierline serve --workers
2``) migrate it once: the others wait and find the schema up to date. Before the migration
lock, two processes created the same tables and one of them (and so uvicorn) failed to start."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect, text

from tierline.serving.storage.db import Database

MIGRATE = "import sys; from tierline.serving.storage.db import Database; Database(sys.argv[1]).migrate()"


def test_processes_migrating_a_new_database_at_once_all_succeed(database_url):
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, database_url], stderr=subprocess.PIPE)
             for _ in range(3)]
    failures = [p.stderr.read().decode()[-800:] for p in procs if p.wait(120) != 0]
    assert not failures, failures
    db = Database(database_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    assert "agents" in inspect(db.engine).get_table_names()
    db.dispose()
