"""Durable storage: SQLAlchemy models, the database handle and Alembic migrations."""
