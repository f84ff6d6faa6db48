"""Content-addressed artifact store: model weights, indexes, buffers, prototype tables.

An artifact's name is the sha256 of its bytes, so the name is also the checksum: every load
recomputes it and refuses anything truncated or altered.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from core.errors import ArtifactIntegrityError, NotFoundError
from storage.filesystem import open_location

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, uri: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.uri = uri
        self.location = open_location(uri)
        # Remote artifacts are copied here so faiss can memory-map them.
        self.cache_dir = Path(cache_dir) if cache_dir else None

    def _path(self, sha: str) -> str:
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise NotFoundError(f"{sha!r} is not an artifact id (expected 64 lowercase hex characters)")
        return self.location.path(sha[:2], sha)

    def put_bytes(self, data: bytes) -> str:
        sha = sha256_bytes(data)
        path = self._path(sha)
        if not self.location.exists(path):
            self.location.write_atomic(path, data)
        return sha

    def put_file(self, path: str | os.PathLike[str]) -> str:
        return self.put_bytes(Path(path).read_bytes())

    def exists(self, sha: str) -> bool:
        return self.location.exists(self._path(sha))

    def require_present(self, shas) -> None:
        """Raise :class:`ArtifactIntegrityError` for the first artifact that is missing (a cheap stat
        each; registrations call it under the artifacts lock, see ``ModelRegistry.delete_unreferenced``)."""
        for sha in shas:
            if not self.exists(sha):
                raise ArtifactIntegrityError(
                    f"artifact {sha} is missing from {self.uri}: a concurrent `steward gc` deleted it before "
                    "it was registered; run the command again"
                )

    def get_bytes(self, sha: str) -> bytes:
        path = self._path(sha)
        if not self.location.exists(path):
            raise ArtifactIntegrityError(f"artifact {sha} is missing from {self.uri}; it was deleted or never written")
        data = self.location.read_bytes(path)
        actual = sha256_bytes(data)
        if actual != sha:
            raise ArtifactIntegrityError(
                f"artifact {sha} in {self.uri} fails its checksum (content hashes to {actual}, "
                f"{len(data)} bytes): it is truncated or altered; restore it or roll back to another version"
            )
        return data

    def verify(self, sha: str) -> None:
        """Raise :class:`ArtifactIntegrityError` unless the artifact is present and intact."""
        if self.location.is_local:
            path = self._path(sha)
            if not os.path.exists(path):
                raise ArtifactIntegrityError(f"artifact {sha} is missing from {self.uri}")
            actual = sha256_file(path)
            if actual != sha:
                raise ArtifactIntegrityError(
                    f"artifact {sha} in {self.uri} fails its checksum (content hashes to {actual}): "
                    "it is truncated or altered; restore it or roll back to another version"
                )
        else:
            self.get_bytes(sha)

    def local_path(self, sha: str) -> Path:
        """A verified file on local disk holding the artifact (for memory-mapping)."""
        if self.location.is_local:
            self.verify(sha)
            return Path(self._path(sha))
        if self.cache_dir is None:
            raise NotFoundError(f"artifact store {self.uri} is remote and no local cache folder is configured")
        target = self.cache_dir / sha[:2] / sha
        if not target.exists() or sha256_file(target) != sha:
            data = self.get_bytes(sha)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return target

    def delete(self, sha: str) -> None:
        path = self._path(sha)
        if self.location.exists(path):
            self.location.delete(path)
            log.info("deleted artifact %s", sha)
