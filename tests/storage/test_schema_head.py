"""Opening a registry at the newest schema does not import alembic; a new migration updates SCHEMA_HEAD."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from storage.registry.database import MIGRATIONS, SCHEMA_HEAD

REPO = Path(__file__).resolve().parents[2]


def test_schema_head_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


def test_reopening_an_up_to_date_registry_skips_alembic(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    code = (
        "import sys\n"
        "from storage.registry.database import Database\n"
        f"Database({url!r}).engine.dispose()\n"  # first open: migrates (alembic)
        "for m in [m for m in sys.modules if m.startswith('alembic')]: del sys.modules[m]\n"
        f"db = Database({url!r})\n"
        "assert db._current_revision() == db.upgrade()\n"
        "print(any(m.startswith('alembic') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
