"""One code path for local folders and remote object stores, through pyarrow's filesystems.

``open_filesystem("s3://bucket/prefix")`` and ``open_filesystem("/var/steward")`` both return a
:class:`Location`; callers write with :meth:`Location.write_atomic` and never see the difference.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from core.errors import ConfigError


@dataclass(frozen=True)
class Location:
    fs: pafs.FileSystem
    root: str  # path inside ``fs``, without trailing slash

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def makedirs(self, path: str) -> None:
        self.fs.create_dir(path, recursive=True)

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write ``data`` so readers see the whole file or nothing.

        Locally: temp file in the same folder, fsync, rename. Object stores publish an object
        only when its upload completes, so a plain write is already atomic there.
        """
        parent = path.rsplit("/", 1)[0]
        self.makedirs(parent)
        if not self.is_local:
            with self.fs.open_output_stream(path) as out:
                out.write(data)
            return
        tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as fh:
            return fh.read()

    def delete(self, path: str) -> None:
        self.fs.delete_file(path)


def open_location(uri: str) -> Location:
    """Resolve a local path or any URI pyarrow understands (``file://``, ``s3://``, ``gs://``...)."""
    try:
        if "://" in uri:
            fs, root = pafs.FileSystem.from_uri(uri)
        else:
            fs, root = pafs.LocalFileSystem(), os.path.abspath(uri)
    except (ValueError, OSError) as e:  # pyarrow raises ArrowInvalid (a ValueError) for bad URIs
        raise ConfigError(f"cannot open storage location {uri!r}: {e}") from e
    root = root.rstrip("/")
    location = Location(fs=fs, root=root)
    location.makedirs(root)
    return location
