"""Object storage for real: the stores against a local S3-compatible server (moto in server mode).

``STEWARD_ARTIFACTS`` and ``STEWARD_DATA`` are ``s3://`` URIs with ``endpoint_override`` pointing at
the server, exactly as a real bucket would be configured (README, "Object storage"). Covers ingest,
as-of reads, artifact checksums, promote, rollback, gc and a kill -9 in the middle of an upload.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.errors import ArtifactIntegrityError, ConflictError
from tests.factories import feature_table, kill_when_ready, make_settings

REPO = Path(__file__).resolve().parents[2]
try:
    from moto.server import ThreadedMotoServer
except ImportError:  # pragma: no cover - the dev extra installs it
    ThreadedMotoServer = None

pytestmark = pytest.mark.skipif(
    ThreadedMotoServer is None,
    reason="moto[server] is not installed (the dev extra: pip install -c constraints.txt 'moto[server]==5.*')",
)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "steward-test", "AWS_SECRET_ACCESS_KEY": "steward-test",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3_endpoint():
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _uri(endpoint: str, bucket: str, prefix: str) -> str:
    return (f"s3://{bucket}/{prefix}?endpoint_override={endpoint}&scheme=http&region=us-east-1"
            "&allow_bucket_creation=true")


@pytest.fixture
def s3_env(s3_endpoint, tmp_path):
    bucket = f"steward-{uuid.uuid4().hex[:12]}"
    return {"STEWARD_HOME": str(tmp_path / "home"), "STEWARD_ARTIFACTS": _uri(s3_endpoint, bucket, "artifacts"),
            "STEWARD_DATA": _uri(s3_endpoint, bucket, "data")}


@pytest.fixture
def s3_workspace(s3_env):
    from storage.workspace import open_workspace

    env = dict(s3_env)
    ws = open_workspace(make_settings(Path(env.pop("STEWARD_HOME")), **env))
    yield ws
    ws.close()


def test_settings_take_s3_uris_from_the_environment(s3_workspace) -> None:
    assert s3_workspace.settings.artifacts_uri.startswith("s3://")
    assert not s3_workspace.artifacts.location.is_local and not s3_workspace.store.location.is_local


def test_ingest_and_as_of_reads_on_s3(s3_workspace) -> None:
    store = s3_workspace.store
    first = store.ingest_table(feature_table(6, dim=4, seed=0), "c")
    again = store.ingest_table(feature_table(6, dim=4, seed=0), "c")
    update = feature_table(3, dim=4, seed=1, start=4)  # rewrites i4, i5; adds i6..
    store.ingest_table(update, "c")
    assert (first.batch_seq, again.skipped_duplicate) == (1, True)
    assert sorted(store.read("c", as_of=1)["item_id"].to_pylist()) == [f"i{i}" for i in range(6)]
    assert sorted(store.read("c")["item_id"].to_pylist()) == sorted([f"i{i}" for i in range(4)] + ["i4", "i5", "i6"])
    fs, root = store.location.fs, store.location.root
    names = [i.base_name for i in fs.get_file_info(__import__("pyarrow.fs").fs.FileSelector(f"{root}/c/batches"))]
    assert len(names) == 2 and all(n.endswith(".parquet") for n in names)


def _pair(ws, tag: str) -> tuple[int, int]:
    reg, artifacts = ws.registry, ws.artifacts
    v = reg.models.register_model("c", config={}, metrics={}, artifacts={
        "weights": artifacts.put_bytes(f"w-{tag}".encode())}, require_present=artifacts.require_present).version
    i = reg.models.register_index("c", v, factory="Flat", params={}, metrics={},
                                  artifact=artifacts.put_bytes(f"i-{tag}".encode()), as_of_batch=None,
                                  num_vectors=1, require_present=artifacts.require_present).id
    return v, i


def test_checksums_promote_rollback_and_gc_on_s3(s3_workspace) -> None:
    from storage.retention import collect_garbage

    ws = s3_workspace
    ws.registry.catalog.ensure_collection("c", kind="features", dim=4)
    pairs = [_pair(ws, t) for t in "abc"]
    production = ws.production
    production.promote("c", *pairs[0], reason="v1")
    production.promote("c", *pairs[1], reason="v2")
    assert ws.artifacts.get_bytes(ws.registry.models.get_model("c", 2).artifacts["weights"]) == b"w-b"

    # Alter v3's weights in the bucket: promotion refuses it, production stays.
    sha = ws.registry.models.get_model("c", 3).artifacts["weights"]
    loc = ws.artifacts.location
    with loc.fs.open_output_stream(loc.path(sha[:2], sha)) as out:
        out.write(b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="fails its checksum"):
        production.promote("c", *pairs[2], reason="v3")
    assert production.target("c").model_version == 2
    local = ws.artifacts.local_path(ws.registry.models.get_model("c", 2).artifacts["weights"])
    assert local.read_bytes() == b"w-b"  # the verified local copy faiss would memory-map

    production.rollback("c", reason="back")
    assert production.target("c").model_version == 1
    production.promote("c", *pairs[1], reason="v2 again")

    result = collect_garbage(ws.registry, ws.artifacts, "c", keep=1, store=ws.store)
    assert result.model_versions == (1,) and len(result.artifacts_deleted) == 2
    assert not any(ws.artifacts.exists(s) for s in result.artifacts_deleted)
    pair = production.pair("c")
    production.verify(pair.model, pair.index)
    with pytest.raises((ConflictError, ArtifactIntegrityError), match="garbage-collected|missing"):
        production.rollback("c", to_version=1, reason="gone")


_KILL_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import pyarrow.fs as pafs
    from core.settings import load_settings
    from storage.workspace import open_workspace
    import storage.filesystem as fsmod

    ready = sys.argv[1]
    real = fsmod.Location.write_atomic
    def half_then_hang(self, path, data):
        if "/batches/" not in path:
            return real(self, path, data)
        out = self.fs.open_output_stream(path)
        out.write(data[: len(data) // 2])  # an upload in progress (multipart, not completed)
        open(ready, "w").close()
        time.sleep(600)
    fsmod.Location.write_atomic = half_then_hang
    ws = open_workspace(load_settings())
    ws.store.ingest(sys.argv[2], "c")
    """
)


def test_a_writer_killed_mid_upload_leaves_nothing_visible(s3_env, s3_workspace, tmp_path) -> None:
    ws = s3_workspace
    ws.store.ingest_table(feature_table(5, dim=8, prefix="old"), "c")
    src = tmp_path / "big.parquet"
    pq.write_table(feature_table(20000, dim=8, seed=3), src)
    ready = tmp_path / "ready"
    env = {**os.environ, **CREDENTIALS, **s3_env, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(ready), str(src)], cwd=REPO, env=env)
    kill_when_ready(proc, ready, timeout=120)

    assert [b.seq for b in ws.registry.catalog.list_batches("c")] == [1]
    assert ws.store.read("c").num_rows == 5
    import pyarrow.fs as pafs

    loc = ws.store.location
    files = loc.fs.get_file_info(pafs.FileSelector(loc.path("c", "batches")))
    assert len(files) == 1  # the half upload never became an object
    result = ws.store.ingest(src, "c")
    assert (result.batch_seq, result.rows) == (2, 20000)
    assert ws.store.read("c").num_rows == 20005
