"""The shadow A/B records in the registry: batch writes, reads by pair, counts for the gate, the migration."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import NotFoundError
from storage.registry import open_registry
from storage.registry.entities import ShadowRecord


def _rec(prod: int, shadow: int, queries: int, collection: str = "c") -> ShadowRecord:
    return ShadowRecord(collection, prod, 10 + prod, shadow, 10 + shadow, 5, queries, 0.5 * queries, 1, 0, 1,
                        1.5, 2.5, datetime.now(UTC))


def test_records_round_trip_and_are_counted_per_pair(registry_url) -> None:
    reg = open_registry(registry_url)
    try:
        reg.catalog.ensure_collection("c", kind="features", dim=4)
        assert reg.shadow.record([_rec(1, 2, 3), _rec(1, 2, 4), _rec(1, 3, 5)]) == 3
        assert reg.shadow.record([_rec(2, 3, 6)]) == 1
        assert reg.shadow.query_count("c", 2) == 7
        assert reg.shadow.query_count("c", 3) == 11 and reg.shadow.query_count("c", 3, production_model=1) == 5
        assert reg.shadow.pairs("c") == [(2, 3, 6), (1, 3, 5), (1, 2, 7)]  # newest first
        got = reg.shadow.list_records("c", shadow_model=2)
        assert [r.queries for r in got] == [4, 3] and all(r.id is not None for r in got)
        assert got[0].at.tzinfo is not None and got[0].shadow_ms == 2.5
        with pytest.raises(NotFoundError):
            reg.shadow.record([_rec(1, 2, 1, collection="nope")])
        assert reg.shadow.query_count("c", 2) == 7  # the failed batch wrote nothing
    finally:
        reg.dispose()


def test_migration_0003_matches_the_orm_and_downgrades(tmp_path) -> None:
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    from storage.registry.database import MIGRATIONS
    from storage.registry.orm import Base

    reg = open_registry(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with reg.db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert not [d for d in diff if "shadow_records" in repr(d)]
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with reg.db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        assert "shadow_records" not in inspect(reg.db.engine).get_table_names()
    finally:
        reg.dispose()
