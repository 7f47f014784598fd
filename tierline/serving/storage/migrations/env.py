"""Alembic environment: migrations run against the URL handed over by ``tierline.serving.storage.db``."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from tierline.serving.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations() -> None:
    """Online migrations on the configured URL (or on a connection passed in by the caller)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
