"""One code path for local folders and remote object stores, through pyarrow's filesystems.

``open_filesystem("s3://bucket/prefix")`` and ``open_filesystem("/var/steward")`` both return a
:class:`Location`; callers write with :meth:`Location.write_atomic` and never see the difference.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from core.errors import ConfigError

TMP_PREFIX = ".tmp-"
# A temporary whose writer cannot be identified as dead (another host, an old name) is removed only
# once it is this old: no write of one batch or artifact takes a day.
TMP_GRACE_SECONDS = 24 * 3600


def _tmp_name() -> str:
    # host and pid in the name, so a later sweep on this host can tell a dead writer's leftover from
    # a live writer's file in progress (a concurrent ingest of the same content writes beside it).
    host = socket.gethostname().replace("-", "_").replace("/", "_")[:40]
    return f"{TMP_PREFIX}{host}-{os.getpid()}-{uuid.uuid4().hex}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def temporary_is_abandoned(name: str, mtime: float, *, now: float | None = None,
                           grace_seconds: float = TMP_GRACE_SECONDS) -> bool:
    """Whether the temporary file ``name`` was left by a writer that died (pure apart from the pid check).

    ``.tmp-<host>-<pid>-<uuid>`` written on this host by a process that no longer runs: abandoned.
    Anything else (another host, an unparseable or older name) only once older than the grace period.
    """
    if not name.startswith(TMP_PREFIX):
        return False
    parts = name[len(TMP_PREFIX):].split("-")
    host = socket.gethostname().replace("-", "_").replace("/", "_")[:40]
    if (len(parts) == 3 and parts[0] == host and parts[1].isdigit() and int(parts[1]) != os.getpid()
            and not _pid_alive(int(parts[1]))):
        return True
    return ((now if now is not None else time.time()) - mtime) > grace_seconds


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
        tmp = f"{parent}/{_tmp_name()}"
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

    def sweep_temporaries(self, folder: str, *, recursive: bool = False) -> list[str]:
        """Remove the temporaries that writers killed mid-write left in ``folder`` (local only).

        Object stores publish an object only when its upload completes, so nothing is left there.
        Returns the removed paths.
        """
        if not self.is_local or not os.path.isdir(folder):
            return []
        removed = []
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    if temporary_is_abandoned(name, os.path.getmtime(path)):
                        os.unlink(path)
                        removed.append(path)
                except FileNotFoundError:  # its writer finished (renamed it) or another sweep won
                    continue
            if not recursive:
                dirnames.clear()
        return removed


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
