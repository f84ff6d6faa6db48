from __future__ import annotations

import hashlib

import numpy as np
import pytest

from core.errors import ArtifactIntegrityError, NotFoundError
from storage.artifact_store import ArtifactStore
from storage.serialization import (
    arrays_from_bytes,
    arrays_to_bytes,
    state_dict_from_bytes,
    state_dict_to_bytes,
)


@pytest.fixture(params=["local", "mock"])
def store(request, tmp_path) -> ArtifactStore:
    # "mock://" is pyarrow's in-memory filesystem: the same code path as s3:// or gs://.
    uri = str(tmp_path / "artifacts") if request.param == "local" else "mock:///artifacts"
    return ArtifactStore(uri, cache_dir=tmp_path / "cache")


def test_put_get_roundtrip_is_content_addressed(store: ArtifactStore) -> None:
    data = b"weights" * 1000
    sha = store.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.put_bytes(data) == sha  # idempotent
    assert store.get_bytes(sha) == data
    assert store.exists(sha)
    assert store.local_path(sha).read_bytes() == data


def _tamper(store: ArtifactStore, sha: str, new: bytes) -> None:
    with store.location.fs.open_output_stream(store.location.path(sha[:2], sha)) as out:
        out.write(new)


@pytest.mark.parametrize("damage", ["truncate", "alter"])
def test_damaged_artifact_never_loads(store: ArtifactStore, damage: str) -> None:
    data = bytes(range(256)) * 100
    sha = store.put_bytes(data)
    _tamper(store, sha, data[:1000] if damage == "truncate" else b"X" + data[1:])
    with pytest.raises(ArtifactIntegrityError, match="checksum"):
        store.get_bytes(sha)
    with pytest.raises(ArtifactIntegrityError):
        store.verify(sha)
    with pytest.raises(ArtifactIntegrityError):
        store.local_path(sha)


def test_missing_artifact_is_an_integrity_error(store: ArtifactStore) -> None:
    sha = store.put_bytes(b"x")
    store.delete(sha)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.get_bytes(sha)
    with pytest.raises(NotFoundError):
        store.get_bytes("not-a-hash")


def test_state_dict_roundtrip_and_refuses_pickled_code() -> None:
    import pickle

    import torch

    sd = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(3)}
    back = state_dict_from_bytes(state_dict_to_bytes(sd))
    assert torch.equal(back["w"], sd["w"]) and torch.equal(back["b"], sd["b"])

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(ArtifactIntegrityError):
        state_dict_from_bytes(pickle.dumps({"w": Evil()}))


def test_arrays_roundtrip_without_pickle() -> None:
    a = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    back = arrays_from_bytes(arrays_to_bytes(vectors=a, labels=np.array(["x", "y", "z", "w"])))
    assert np.array_equal(back["vectors"], a)
    assert back["labels"].tolist() == ["x", "y", "z", "w"]
    with pytest.raises(ArtifactIntegrityError):
        arrays_from_bytes(arrays_to_bytes(obj=np.array([{"a": 1}], dtype=object)))
