"""Samples of recent query vectors: written by the search service, read by index tuning.

Layout under the artifact location (shared by every API process and every maintenance run, local or
object store): ``query-samples/<collection>/model-<version>/<writer>.npz``. Each writing process has
its own file (several API processes never overwrite each other) and replaces it whole on each write
(``Location.write_atomic``), so a reader sees a complete sample or the previous one. A file holds
``vectors`` (m, d) float32 under that model version, optionally ``inputs`` (m, d_in) float32 (the raw
feature vectors they were embedded from, so another model version can embed them too), ``seen``
(queries the sample was drawn from) and ``written_at`` (unix seconds).

These are not artifacts (not content-addressed, never referenced by a version): retention ignores
them, and a writer removes its collection's files once they are older than the reader would accept.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow.fs as pafs

from storage.filesystem import Location
from storage.vector_cache import namespace_dir_name

log = logging.getLogger(__name__)

FOLDER = "query-samples"


@dataclass(frozen=True)
class QuerySample:
    vectors: np.ndarray  # (m, d) float32 query embeddings under the model version they were stored for
    seen: int  # queries the sample was drawn from
    written_at: float  # unix seconds
    inputs: np.ndarray | None = None  # (m, d_in) float32 raw feature queries, row-aligned with ``vectors``

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        extra = {} if self.inputs is None else {"inputs": np.asarray(self.inputs, np.float32)}
        np.savez(buf, vectors=np.asarray(self.vectors, np.float32), seen=np.int64(self.seen),
                 written_at=np.float64(self.written_at), **extra)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuerySample:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            inputs = z["inputs"] if "inputs" in z.files else None
            return cls(vectors=z["vectors"], seen=int(z["seen"]), written_at=float(z["written_at"]), inputs=inputs)


class QuerySampleStore:
    """Read and write query samples under ``location`` (the artifact store's location)."""

    def __init__(self, location: Location, folder: str = FOLDER) -> None:
        self.location = location
        self.folder = folder

    def _dir(self, collection: str, model_version: int | None = None) -> str:
        parts = [self.folder, namespace_dir_name(collection)]
        if model_version is not None:
            parts.append(f"model-{int(model_version)}")
        return self.location.path(*parts)

    def write(self, collection: str, model_version: int, writer: str, sample: QuerySample) -> None:
        path = f"{self._dir(collection, model_version)}/{namespace_dir_name(writer)}.npz"
        self.location.write_atomic(path, sample.to_bytes())

    def _files(self, folder: str, *, recursive: bool = False) -> list[pafs.FileInfo]:
        infos = self.location.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True, recursive=recursive))
        return [i for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".npz")]

    def read(self, collection: str, model_version: int, *, max_age_seconds: float,
             now: float | None = None) -> list[QuerySample]:
        """The samples of every writer for this collection and model version, newest first; samples
        written more than ``max_age_seconds`` ago and unreadable files (logged) are left out."""
        now = time.time() if now is None else now
        out = []
        for info in self._files(self._dir(collection, model_version)):
            try:
                sample = QuerySample.from_bytes(self.location.read_bytes(info.path))
            except (OSError, ValueError, KeyError) as e:  # a sample is a hint, never worth failing a build
                log.warning("ignoring unreadable query sample %s: %s", info.path, e)
                continue
            if now - sample.written_at <= max_age_seconds:
                out.append(sample)
        return sorted(out, key=lambda s: -s.written_at)

    def model_versions(self, collection: str) -> list[int]:
        """Model versions with at least one sample file for ``collection``, ascending."""
        infos = self.location.fs.get_file_info(pafs.FileSelector(self._dir(collection), allow_not_found=True))
        found = [i.base_name.removeprefix("model-") for i in infos if i.type == pafs.FileType.Directory]
        return sorted(int(v) for v in found if v.isdigit())

    def prune(self, collection: str, *, max_age_seconds: float, now: float | None = None) -> int:
        """Remove this collection's sample files last modified more than ``max_age_seconds`` ago."""
        now = time.time() if now is None else now
        removed = 0
        for info in self._files(self._dir(collection), recursive=True):
            mtime = info.mtime.timestamp() if info.mtime is not None else now
            if now - mtime > max_age_seconds:
                try:
                    self.location.delete(info.path)
                    removed += 1
                except FileNotFoundError:  # another writer pruned it first
                    continue
        return removed


__all__ = ["FOLDER", "QuerySample", "QuerySampleStore"]
