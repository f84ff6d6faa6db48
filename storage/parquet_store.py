"""The versioned Parquet item store.

Layout under the data location (local folder or object store)::

    <collection>/batches/<content sha256>.parquet      good rows of one batch
    <collection>/quarantine/<content sha256>.parquet   rejected rows, with a ``reason`` column

A batch becomes visible only when the registry records it (after its file is completely
written), so a crash mid-write leaves at most an unreferenced file that nothing reads and that a
re-ingest of the same content overwrites. Batches are numbered 1, 2, 3... per collection; reading
"as of" batch N gives, for every item_id, its newest version among batches 1..N, minus items whose
newest version is a deletion (``deleted = true``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import ConflictError, NotFoundError, ValidationError
from storage.filesystem import open_location
from storage.ingest_validation import validate_batch
from storage.registry.catalog import CatalogStore
from storage.registry.entities import Batch

log = logging.getLogger(__name__)
# Matched with fullmatch: ``$`` alone would also accept a name ending in a newline.
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "json", ".ndjson": "json", ".json": "json"}


@dataclass(frozen=True)
class IngestResult:
    collection: str
    batch_seq: int | None  # the existing batch's seq when skipped as a duplicate
    rows: int
    new_items: int
    updated_items: int
    deleted_items: int
    quarantined: int
    quarantine_path: str | None
    skipped_duplicate: bool
    content_hash: str
    source: str

    def describe(self) -> str:
        if self.skipped_duplicate:
            return (f"{self.source}: identical content was already ingested as batch {self.batch_seq} "
                    f"of {self.collection!r}; nothing to do")
        text = (f"{self.source}: batch {self.batch_seq} of {self.collection!r}: {self.rows} rows "
                f"({self.new_items} new, {self.updated_items} updated, {self.deleted_items} deleted), "
                f"{self.quarantined} quarantined")
        return text + (f" -> {self.quarantine_path}" if self.quarantine_path else "")


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not _COLLECTION_NAME.fullmatch(name):
        raise ValidationError(
            f"collection name {name!r} is not allowed; use letters, digits, '.', '_' or '-' (max 128, no leading symbol)"
        )
    return name


def read_input_file(path: str | Path) -> tuple[pa.Table, bytes]:
    """Read a Parquet, CSV or JSONL file; return the table and the raw bytes (for the content hash)."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValidationError(f"{path}: unknown file type {path.suffix!r}; use .parquet, .csv or .jsonl")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValidationError(f"{path}: cannot read the file ({e.strerror}); nothing was written") from e
    try:
        if fmt == "parquet":
            table = pq.read_table(io.BytesIO(raw))
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            # ids and labels are names, not numbers: "007" must stay "007".
            opts = pacsv.ConvertOptions(column_types={"item_id": pa.string(), "label": pa.string()})
            table = pacsv.read_csv(io.BytesIO(raw), convert_options=opts)
        else:
            import pyarrow.json as pajson

            table = pajson.read_json(io.BytesIO(raw))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        raise ValidationError(f"{path}: unreadable as {fmt} ({e}); nothing was written") from e
    return table, raw


def iter_input_file(path: str | Path, chunk_rows: int = 8192) -> Iterator[pa.Table]:
    """Read a Parquet, CSV or JSONL file in chunks of about ``chunk_rows`` rows (bounded memory),
    parsed as :func:`read_input_file` parses the whole file."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValidationError(f"{path}: unknown file type {path.suffix!r}; use .parquet, .csv or .jsonl")
    if not path.is_file():
        raise ValidationError(f"{path}: no such file")
    try:
        if fmt == "parquet":
            for rb in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
                yield pa.Table.from_batches([rb])
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            opts = pacsv.ConvertOptions(column_types={"item_id": pa.string(), "label": pa.string()})
            with pacsv.open_csv(path, convert_options=opts) as reader:
                for rb in reader:
                    yield pa.Table.from_batches([rb])
        else:
            import pyarrow.json as pajson

            with open(path, "rb") as f:
                while True:
                    lines = [line for _, line in zip(range(chunk_rows), f, strict=False)]
                    if not lines:
                        break
                    if any(line.strip() for line in lines):
                        yield pajson.read_json(io.BytesIO(b"".join(lines)))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as e:
        raise ValidationError(f"{path}: unreadable as {fmt} ({e})") from e


def features_to_numpy(data: pa.Table | pa.RecordBatch, column: str = "features") -> np.ndarray:
    """The fixed-size-list ``features`` column as a float32 (n, dim) matrix (zero-copy when possible)."""
    col = _one_array(data.column(column))
    dim = col.type.list_size
    if len(col) == 0:
        return np.zeros((0, dim), np.float32)
    return np.asarray(arrow_to_numpy(col.flatten()), dtype=np.float32).reshape(len(col), dim)


_NUMPY_DTYPES = {pa.float16(): np.float16, pa.float32(): np.float32, pa.float64(): np.float64,
                 pa.int32(): np.int32, pa.int64(): np.int64, pa.uint32(): np.uint32, pa.uint64(): np.uint64}


def arrow_to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A flat Arrow column as numpy: numbers without nulls read straight from the data buffer, since
    ``to_numpy`` imports pandas on its first call (0.2-0.3 s a short command would pay)."""
    values = _one_array(values)
    dtype = _NUMPY_DTYPES.get(values.type)
    if dtype is None or values.null_count:
        return values.to_numpy(zero_copy_only=False)
    data = values.buffers()[1]
    if data is None:  # an empty array may have no data buffer
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(values), offset=values.offset * np.dtype(dtype).itemsize)


def _one_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one contiguous Arrow array (a single chunk is taken as it is, without a copy)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def filter_rows(table: pa.Table, mask: np.ndarray) -> pa.Table:
    """The rows of ``table`` where the boolean ``mask`` is true. The mask is handed to Arrow as a bit
    buffer: ``pa.array`` imports pandas on its first call (0.2-0.3 s), which a short command on the
    drift path would otherwise pay for one filter."""
    mask = np.asarray(mask, dtype=bool)
    if len(mask) != table.num_rows:
        raise ValidationError(f"a mask of {len(mask)} values for a table of {table.num_rows} rows")
    bits = pa.py_buffer(np.packbits(mask, bitorder="little"))
    return table.filter(pa.BooleanArray.from_buffers(pa.bool_(), len(mask), [None, bits]))


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class ParquetStore:
    def __init__(self, uri: str, catalog: CatalogStore) -> None:
        self.uri = uri
        self.location = open_location(uri)
        self.catalog = catalog

    # --- writing -------------------------------------------------------------------------------

    def ingest(self, path: str | Path, collection: str) -> IngestResult:
        table, raw = read_input_file(path)
        return self._ingest(table, collection, source=str(path), content_hash=hashlib.sha256(raw).hexdigest())

    def ingest_table(self, table: pa.Table, collection: str, source: str = "table") -> IngestResult:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return self._ingest(table, collection, source=source, content_hash=hashlib.sha256(sink.getvalue()).hexdigest())

    def sweep_temporaries(self, collection: str | None = None) -> list[str]:
        """Remove what writers killed mid-write left behind (``.tmp-*`` beside batch files)."""
        folders = [collection] if collection else [
            c.name for c in self.catalog.list_collections()]
        removed: list[str] = []
        for name in folders:
            for sub in ("batches", "quarantine"):
                removed += self.location.sweep_temporaries(self.location.path(name, sub))
        if removed:
            log.info("removed %d abandoned temporary files: %s", len(removed), removed)
        return removed

    def _duplicate(self, previous: Batch, collection: str, source: str, content_hash: str) -> IngestResult:
        log.info("%s already ingested as batch %s", source, previous.seq)
        return IngestResult(
            collection=collection, batch_seq=previous.seq, rows=previous.rows, new_items=0, updated_items=0,
            deleted_items=0, quarantined=previous.quarantined, quarantine_path=previous.quarantine_path,
            skipped_duplicate=True, content_hash=content_hash, source=source,
        )

    def _ingest(self, table: pa.Table, collection: str, *, source: str, content_hash: str) -> IngestResult:
        check_collection_name(collection)
        self.sweep_temporaries(collection)  # a rerun after a crash cleans up the crashed write
        previous = self.catalog.find_batch_by_hash(collection, content_hash)
        if previous is not None:
            return self._duplicate(previous, collection, source, content_hash)
        try:
            existing = self.catalog.get_collection(collection)
            kind, dim = existing.kind, existing.dim
        except NotFoundError:
            kind, dim = None, None
        validated = validate_batch(table, source=source, kind=kind, dim=dim)
        self.catalog.ensure_collection(collection, kind=validated.kind, dim=validated.dim)

        quarantine_rel = None
        if validated.quarantined.num_rows:
            quarantine_rel = f"{collection}/quarantine/{content_hash}.parquet"
            self.location.write_atomic(self.location.path(quarantine_rel), _parquet_bytes(validated.quarantined))
            log.warning("%s: %d rows quarantined to %s", source, validated.quarantined.num_rows, quarantine_rel)
        data_rel = f"{collection}/batches/{content_hash}.parquet"
        self.location.write_atomic(self.location.path(data_rel), _parquet_bytes(validated.good))

        live = self._live_ids(collection)
        ids = validated.good["item_id"]
        deleted = validated.good["deleted"]
        is_known = pc.is_in(ids, value_set=live)
        n_deleted = int(pc.sum(pc.and_(deleted, is_known)).as_py() or 0)
        n_updated = int(pc.sum(pc.and_(pc.invert(deleted), is_known)).as_py() or 0)
        n_new = int(pc.sum(pc.and_(pc.invert(deleted), pc.invert(is_known))).as_py() or 0)
        try:
            batch = self.catalog.add_batch(
                collection, content_hash=content_hash, source=source, rows=validated.good.num_rows,
                new_items=n_new, updated_items=n_updated, quarantined=validated.quarantined.num_rows,
                data_path=data_rel, quarantine_path=quarantine_rel,
            )
        except ConflictError:
            # The same content ingested concurrently won the race (unique content hash): that is
            # "already ingested", not a failure; the file it wrote is byte-identical to ours.
            previous = self.catalog.find_batch_by_hash(collection, content_hash)
            if previous is None:
                raise
            return self._duplicate(previous, collection, source, content_hash)
        return IngestResult(
            collection=collection, batch_seq=batch.seq, rows=batch.rows, new_items=n_new, updated_items=n_updated,
            deleted_items=n_deleted, quarantined=batch.quarantined,
            quarantine_path=self.location.path(quarantine_rel) if quarantine_rel else None,
            skipped_duplicate=False, content_hash=content_hash, source=source,
        )

    # --- reading -------------------------------------------------------------------------------

    def _batches(self, collection: str, as_of: int | None, skip_excluded: bool = False) -> list[Batch]:
        batches = self.catalog.list_batches(collection)
        if as_of is not None:
            if not any(b.seq == as_of for b in batches):
                raise NotFoundError(f"collection {collection!r} has no batch {as_of} (it has 1..{len(batches)})")
            batches = [b for b in batches if b.seq <= as_of]
        if skip_excluded:
            # As if the excluded batches had never arrived: an item they rewrote keeps its earlier version.
            batches = [b for b in batches if not b.excluded]
        return batches

    def _file(self, batch: Batch) -> pq.ParquetFile:
        return pq.ParquetFile(self.location.fs.open_input_file(self.location.path(batch.data_path)))

    def _superseded(self, batches: Sequence[Batch]) -> dict[int, pa.Array]:
        """For each batch seq, the ids that a later batch (within ``batches``) rewrote."""
        result: dict[int, pa.Array] = {}
        later = pa.array([], pa.string())
        for batch in reversed(batches):
            result[batch.seq] = later
            ids = self._file(batch).read(columns=["item_id"])["item_id"].combine_chunks()
            later = pa.concat_arrays([later, ids]).unique() if len(ids) else later
        return result

    def _live_ids(self, collection: str) -> pa.Array:
        try:
            table = self.read(collection, columns=["item_id"])
        except NotFoundError:
            return pa.array([], pa.string())
        return table["item_id"].combine_chunks()

    def iter_batches(
        self, collection: str, as_of: int | None = None, columns: Sequence[str] | None = None,
        batch_size: int = 8192, partition: Collection[int] | None = None, skip_excluded: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the items as of ``as_of`` in record batches (bounded memory).

        ``partition``: only the live rows stored in these batch files (seqs), so workers can split
        a gallery by batch and together cover every item exactly once. ``skip_excluded``: leave out
        excluded batches (what training and drift references read).
        """
        batches = self._batches(collection, as_of, skip_excluded)
        superseded = self._superseded(batches)
        wanted = None if columns is None else list(dict.fromkeys(["item_id", *columns]))
        for batch in batches:
            if partition is not None and batch.seq not in partition:
                continue
            pf = self._file(batch)
            available = pf.schema_arrow.names
            read_cols = None if wanted is None else [c for c in wanted if c in available] + ["deleted"]
            for rb in pf.iter_batches(batch_size=batch_size, columns=read_cols):
                keep = pc.and_(pc.invert(pc.is_in(rb.column("item_id"), value_set=superseded[batch.seq])),
                               pc.invert(rb.column("deleted")))
                out = rb.filter(keep)
                if wanted is not None:
                    out = out.select([c for c in wanted if c in out.schema.names])
                elif "deleted" in out.schema.names:
                    out = out.drop_columns(["deleted"])
                if out.num_rows:
                    yield out

    def read(
        self, collection: str, as_of: int | None = None, columns: Sequence[str] | None = None,
        partition: Collection[int] | None = None, skip_excluded: bool = False,
    ) -> pa.Table:
        """All items as of batch ``as_of`` (None: the newest batch)."""
        parts = list(self.iter_batches(collection, as_of=as_of, columns=columns, partition=partition,
                                       skip_excluded=skip_excluded))
        if not parts:
            return self._empty(collection, columns)
        return pa.Table.from_batches(parts) if _same_schema(parts) else pa.concat_tables(
            [pa.Table.from_batches([p]) for p in parts], promote_options="default"
        )

    def read_batch(self, collection: str, seq: int, columns: Sequence[str] | None = None) -> pa.Table:
        """The good rows that batch ``seq`` brought (deletions excluded), whatever came later."""
        batch = self.catalog.get_batch(collection, seq)
        pf = self._file(batch)
        wanted = None
        if columns is not None:  # read only these from the file: a drift check needs 2-3 of its columns
            available = pf.schema_arrow.names
            wanted = [c for c in dict.fromkeys(["item_id", *columns]) if c in available]
        table = pf.read(columns=None if wanted is None else [*wanted, "deleted"])
        table = table.filter(pc.invert(table["deleted"])).drop_columns(["deleted"])
        return table if wanted is None else table.select(wanted)

    def read_quarantine(self, collection: str, seq: int) -> pa.Table | None:
        batch = self.catalog.get_batch(collection, seq)
        if batch.quarantine_path is None:
            return None
        return pq.read_table(self.location.fs.open_input_file(self.location.path(batch.quarantine_path)))

    def _empty(self, collection: str, columns: Sequence[str] | None) -> pa.Table:
        c = self.catalog.get_collection(collection)
        fields = [pa.field("item_id", pa.string()), pa.field("label", pa.string())]
        fields.append(pa.field("features", pa.list_(pa.float32(), c.dim or 1)) if c.kind == "features" else pa.field("text", pa.string()))
        schema = pa.schema(fields)
        table = schema.empty_table()
        if columns is not None:
            table = table.select([n for n in dict.fromkeys(["item_id", *columns]) if n in table.column_names])
        return table


def _same_schema(parts: list[pa.RecordBatch]) -> bool:
    return all(p.schema.equals(parts[0].schema) for p in parts[1:])
