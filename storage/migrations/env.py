"""Alembic environment. The registry passes its own connection (already inside a locked
transaction) through ``config.attributes["connection"]``, so concurrent first starts serialise."""

from __future__ import annotations

from alembic import context

from storage.registry.orm import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when alembic's CLI is used directly
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url")).connect()

context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
context.run_migrations()
