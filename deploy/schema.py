"""The service database's schema, by hand: tierline has no `migrate` command of its own.

    python deploy/schema.py current           # the database's revision and this release's head
    python deploy/schema.py upgrade           # what `tierline serve` does at start, ahead of it
    python deploy/schema.py downgrade 0005    # back to a revision, before an older release runs

Run it with the release's Python (``/opt/tierline/.venv/bin/python``) and the service's
settings in the environment (``set -a; . /etc/tierline/tierline.env; set +a``). ``upgrade``
takes the same lock as the service's start-up migration and the same timeouts from the
settings: give a long migration time with ``TIERLINE_DATABASE_STATEMENT_TIMEOUT_SECONDS=3600``
on its command line. A downgrade drops what the newer revisions added (0005's drops every API
key); stop the service first. README, "Deploying to production", "Upgrading".
"""

from __future__ import annotations

import sys

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from tierline.serving.settings import Settings
from tierline.serving.storage.db import MIGRATIONS, Database, Timeouts


def database(settings: Settings) -> Database:
    """The service's database handle, with the service's timeouts."""
    return Database(settings.database_url, Timeouts(
        connect=settings.database_connect_timeout_seconds,
        statement=settings.database_statement_timeout_seconds,
        tcp_user=settings.database_tcp_user_timeout_seconds))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("current", "upgrade", "downgrade") or \
            (argv[0] == "downgrade") != (len(argv) == 2) or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    db = database(Settings())
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    try:
        if argv[0] == "upgrade":
            db.migrate()
        elif argv[0] == "downgrade":
            with db.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.downgrade(config, argv[1])
        with db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        db.dispose()
    print(f"database at {current or 'no revision (empty)'}; this release's head is {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
