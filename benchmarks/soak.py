"""Soak: hammers, a kill -9 crash loop and a bad-input corpus for N minutes per registry database.

    SOAK_MINUTES=5 python -m benchmarks.soak            # SQLite, and PostgreSQL when a URL is set
    (make soak; PostgreSQL from STEWARD_SOAK_POSTGRES_URL or STEWARD_TEST_POSTGRES_URL: a database
    is created for the run and dropped after)

Each round is one of:
- **hammer**: 4 processes promote and roll back at random at once (conflicts are expected answers);
- **crash**: one process runs ingest (2,000 rows), retrain-and-index (its storage writes: artifacts
  plus registrations; the torch training itself is not in the loop), promote, rollback or gc, and
  is killed with SIGKILL after a random delay (or finishes);
- **bad input**: one file from a corpus of broken inputs is ingested.

After every round the invariants are checked: one production pair whose artifacts are present and
intact, the production history is an unbroken chain, exactly the alias target has status
``production``, every registered batch file reads, the as-of read works. A round *holds* when its
processes ended with steward's own errors or success and the invariants hold; it *fails* on a
traceback (an error steward did not name) or a broken invariant. Prints and writes tried / held /
failed per kind and database to ``benchmarks/results/soak.json`` and RESULTS.md.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KINDS = ("hammer", "crash", "bad_input")
WEIGHTS = (0.25, 0.45, 0.30)  # a hammer round starts 4 processes; the crash loop is the most varied
CRASH_OPS = ("ingest", "retrain", "promote", "rollback", "gc")
COLLECTION = "soak"
DIM = 8


# --- worker side (a separate process per operation) ----------------------------------------------

def _workspace(home: str, db: str):
    from core.settings import load_settings
    from storage.workspace import open_workspace

    return open_workspace(load_settings(env={"STEWARD_HOME": home, "STEWARD_DATABASE_URL": db}, config_path=None))


def _table(n: int, seed: int):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, DIM)).astype(np.float32)
    ids = [f"i{int(x)}" for x in rng.integers(0, 5000, n)]
    ids = list(dict.fromkeys(ids))
    feats = feats[: len(ids)]
    return pa.table({"item_id": ids, "label": [f"c{int(x)}" for x in rng.integers(0, 5, len(ids))],
                     "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), DIM)})


def _new_pair(ws, seed: int) -> tuple[int, int]:
    rng = random.Random(seed)
    artifacts = ws.artifacts
    weights = artifacts.put_bytes(rng.randbytes(rng.randint(10_000, 400_000)))
    model = ws.registry.models.register_model(COLLECTION, config={}, metrics={}, artifacts={"weights": weights},
                                              require_present=artifacts.require_present)
    index = ws.registry.models.register_index(COLLECTION, model.version, factory="Flat", params={}, metrics={},
                                              artifact=artifacts.put_bytes(rng.randbytes(50_000)),
                                              as_of_batch=None, num_vectors=1,
                                              require_present=artifacts.require_present)
    return model.version, index.id


def _random_switch(ws, rng: random.Random) -> None:
    from core.errors import StewardError

    try:
        if rng.random() < 0.6:
            versions = [m.version for m in ws.registry.models.list_models(COLLECTION)][-6:]  # gc took older ones
            v = rng.choice(versions)
            indexes = ws.registry.models.list_indexes(COLLECTION, v)
            if indexes:
                ws.production.promote(COLLECTION, v, indexes[-1].id, reason="soak")
        else:
            ws.production.rollback(COLLECTION, reason="soak", pin=False)
    except StewardError:
        pass  # a refusal steward names (lost race, garbage-collected, nothing to roll back to) is an answer


def worker(op: str, home: str, db: str, seed: int) -> int:
    from core.errors import StewardError

    rng = random.Random(seed)
    ws = _workspace(home, db)
    print("go", flush=True)  # imports done: the driver's kill timer starts now
    try:
        if op == "hammer":
            for _ in range(15):
                _random_switch(ws, rng)
        elif op == "ingest":
            ws.store.ingest_table(_table(2000, seed), COLLECTION, source=f"soak-{seed}")
        elif op == "retrain":
            _new_pair(ws, seed)
        elif op in ("promote", "rollback"):
            _random_switch(ws, random.Random(seed if op == "promote" else seed + 1))
        elif op == "gc":
            from storage.retention import collect_garbage

            collect_garbage(ws.registry, ws.artifacts, COLLECTION, keep=2, store=ws.store)
    except StewardError as e:
        print(f"steward error: {e}", file=sys.stderr)
    finally:
        ws.close()
    return 0


# --- the bad-input corpus --------------------------------------------------------------------------

def _bad_inputs(folder: Path, rng: random.Random) -> list[tuple[str, Path, str]]:
    """(name, file, collection) for every broken input."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = []

    def add(name: str, suffix: str, content: bytes | str, collection: str = COLLECTION) -> None:
        path = folder / f"{name}{suffix}"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        out.append((name, path, collection))

    add("zero-bytes", ".parquet", b"")
    add("garbage", ".parquet", rng.randbytes(4096))
    add("header-only", ".csv", "item_id,label,feature_0,feature_1\n")
    add("no-item-id", ".csv", "label,feature_0\na,1\n")
    add("wrong-dim", ".csv", "item_id,feature_0,feature_1\na,1,2\n")
    add("nan-inf", ".csv", "item_id," + ",".join(f"feature_{i}" for i in range(DIM)) + "\nx," +
        ",".join(["nan", "inf"] + ["1"] * (DIM - 2)) + "\n")
    add("deleted-maybe", ".csv", "item_id,deleted," + ",".join(f"feature_{i}" for i in range(DIM)) + "\nx,maybe," +
        ",".join(["1"] * DIM) + "\n")
    add("deleted-yes-no", ".csv", "item_id,deleted," + ",".join(f"feature_{i}" for i in range(DIM)) +
        "\nx,yes," + ",".join(["1"] * DIM) + "\ny,no," + ",".join(["2"] * DIM) + "\n")
    add("broken-json", ".jsonl", '{"item_id": "a", "features": [1, 2\n')
    add("unknown-type", ".xlsx", "x")
    add("trailing-newline-name", ".csv", "item_id,feature_0\na,1\n", collection="trail\n")
    add("slash-name", ".csv", "item_id,feature_0\na,1\n", collection="../escape")
    empty = folder / "empty.parquet"
    pq.write_table(pa.table({"item_id": pa.array([], pa.string()),
                             "features": pa.array([], pa.list_(pa.float32(), DIM))}), empty)
    out.append(("empty-parquet", empty, COLLECTION))
    return out


# --- invariants ----------------------------------------------------------------------------------

def check_invariants(ws) -> list[str]:
    problems = []
    production = ws.production
    target = production.target(COLLECTION)
    if target is None:
        return ["no production pair"]
    try:
        pair = production.pair(COLLECTION)
        production.verify(pair.model, pair.index)
    except Exception as e:  # noqa: BLE001 - any failure here is a broken invariant
        problems.append(f"production pair unusable: {type(e).__name__}: {e}")
    history = production.history(COLLECTION)
    for before, after in itertools.pairwise(history):
        if (after.from_model, after.from_index) != (before.to_model, before.to_index):
            problems.append(f"history chain broken at change {after.id}")
    if history and (history[-1].to_model, history[-1].to_index) != (target.model_version, target.index_version):
        problems.append("the last history row is not where the alias points")
    in_production = [m.version for m in ws.registry.models.list_models(COLLECTION) if m.status == "production"]
    if in_production != [target.model_version]:
        problems.append(f"models with status production: {in_production}, alias: {target.model_version}")
    try:
        for b in ws.registry.catalog.list_batches(COLLECTION):
            ws.store.read_batch(COLLECTION, b.seq, columns=["item_id"])
        ws.store.read(COLLECTION, columns=["item_id"])
    except Exception as e:  # noqa: BLE001
        problems.append(f"data unreadable: {type(e).__name__}: {e}")
    return problems


# --- driver --------------------------------------------------------------------------------------

def _spawn(op: str, home: str, db: str, seed: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "benchmarks.soak", "worker", op, home, db, str(seed)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # niceness is inherited (make soak)


def _traceback_in(err: bytes) -> bool:
    return b"Traceback (most recent call last)" in err


def soak(db_name: str, db_url: str, minutes: float, seed: int) -> dict[str, Any]:
    from core.errors import StewardError

    rng = random.Random(seed)
    home = tempfile.mkdtemp(prefix=f"steward-soak-{db_name}-")
    ws = _workspace(home, db_url)
    ws.store.ingest_table(_table(200, seed), COLLECTION, source="seed batch")
    first = _new_pair(ws, seed)
    for k in range(4):
        _new_pair(ws, seed + 1 + k)
    ws.production.promote(COLLECTION, *first, reason="soak start")
    corpus = _bad_inputs(Path(tempfile.mkdtemp(prefix="steward-soak-bad-")), rng)
    counts = {k: {"tried": 0, "held": 0, "failed": 0} for k in KINDS}
    crash_ops = {op: 0 for op in CRASH_OPS}
    killed = 0
    failures: list[str] = []
    deadline = time.monotonic() + minutes * 60
    round_no = 0
    while time.monotonic() < deadline:
        round_no += 1
        kind = rng.choices(KINDS, WEIGHTS)[0]
        counts[kind]["tried"] += 1
        ok, why = True, ""
        if kind == "hammer":
            procs = [_spawn("hammer", home, db_url, rng.randrange(10**9)) for _ in range(4)]
            for p in procs:
                _, err = p.communicate(timeout=600)
                if p.returncode != 0 or _traceback_in(err):
                    ok, why = False, f"hammer worker rc={p.returncode}: {err.decode()[-400:]}"
        elif kind == "crash":
            op = rng.choice(CRASH_OPS)
            crash_ops[op] += 1
            p = _spawn(op, home, db_url, rng.randrange(10**9))
            p.stdout.readline()  # "go": the operation starts
            try:
                _, err = p.communicate(timeout=rng.uniform(0.0, 1.0))
                if p.returncode != 0 or _traceback_in(err):
                    ok, why = False, f"{op} rc={p.returncode}: {err.decode()[-400:]}"
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.communicate()
                killed += 1
        else:
            name, path, collection = rng.choice(corpus)
            try:
                ws.store.ingest(path, collection)
            except StewardError:
                pass
            except Exception:  # noqa: BLE001 - exactly what the soak looks for
                ok, why = False, f"bad input {name}: {traceback.format_exc(limit=3)}"
        problems = check_invariants(ws)
        if problems:
            ok, why = False, (why + "; " if why else "") + "; ".join(problems)
        counts[kind]["held" if ok else "failed"] += 1
        if not ok:
            failures.append(f"round {round_no} ({kind}): {why}")
            print(f"  FAILED round {round_no} ({kind}): {why[:300]}", flush=True)
    history = ws.production.history(COLLECTION)
    ws.close()
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(corpus[0][1].parent, ignore_errors=True)
    return {"database": db_name, "minutes": minutes, "rounds": round_no, "counts": counts,
            "crash_ops": crash_ops, "killed": killed, "history_rows": len(history), "failures": failures[:20]}


def _postgres_database(base_url: str):
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(base_url)
    name = f"steward_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return base.set(database=name).render_as_string(hide_password=False), lambda: _drop(admin, name)


def _drop(admin, name: str) -> None:
    from sqlalchemy import text

    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        return worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    from benchmarks._results import markdown_table, write_results

    minutes = float(os.environ.get("SOAK_MINUTES", "5"))
    seed = int(os.environ.get("SOAK_SEED", "0"))
    runs = []
    with tempfile.TemporaryDirectory(prefix="steward-soak-sqlite-") as tmp:
        print(f"soak: SQLite for {minutes} min", flush=True)
        runs.append(soak("sqlite", f"sqlite:///{tmp}/registry.db", minutes, seed))
    pg = os.environ.get("STEWARD_SOAK_POSTGRES_URL") or os.environ.get("STEWARD_TEST_POSTGRES_URL")
    if pg:
        url, drop = _postgres_database(pg)
        try:
            print(f"soak: PostgreSQL for {minutes} min", flush=True)
            runs.append(soak("postgresql", url, minutes, seed + 1))
        finally:
            drop()
    else:
        print("soak: PostgreSQL skipped (set STEWARD_SOAK_POSTGRES_URL or STEWARD_TEST_POSTGRES_URL)")
    rows = []
    for r in runs:
        for kind in KINDS:
            c = r["counts"][kind]
            rows.append({"database": r["database"], "kind": kind, **c})
            print(f"{r['database']:<10} {kind:<9} tried {c['tried']:>4}  held {c['held']:>4}  failed {c['failed']:>3}")
        print(f"{r['database']:<10} killed {r['killed']} processes mid-operation ({r['crash_ops']}); "
              f"{r['history_rows']} production history rows")
    total_failed = sum(r["counts"][k]["failed"] for r in runs for k in KINDS)
    md = (f"## Soak (`make soak`, SOAK_MINUTES={minutes:g} per database)\n\n"
          "Hammers (4 processes promoting and rolling back at once), a kill -9 crash loop (ingest, retrain "
          "and index storage writes, promote, rollback, gc) and a bad-input corpus; invariants checked after "
          "every round (one intact production pair, unbroken history chain, readable batches). Taken on a "
          "shared, loaded 2-core machine.\n\n" + markdown_table(rows) + "\n\n" +
          "\n".join(f"- {r['database']}: {r['rounds']} rounds, {r['killed']} processes killed mid-operation "
                    f"({', '.join(f'{k} {v}' for k, v in r['crash_ops'].items())}), {r['history_rows']} "
                    "production history rows" for r in runs))
    write_results("soak", {"minutes": minutes, "seed": seed, "runs": runs, "failed": total_failed}, md)
    print(json.dumps({"failed": total_failed}))
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
