"""Loading a registered model version and embedding with it (the interface other parts call).

Weights are verified against their sha256 by the artifact store on every load; loaded models are
cached per (collection, version, weights checksum, device) since artifacts are immutable.

On CPU a version saved with its head as plain arrays (``head_arrays``, npz) embeds through
:class:`embedding.numpy_head.NumpyHead`, without importing torch; versions saved before that carry
only torch weights and load through torch.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import ArtifactIntegrityError, ValidationError
from embedding.prototypes import Prototypes

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from embedding.model import EmbeddingHead
    from embedding.numpy_head import NumpyHead
    from storage.registry.entities import ModelVersion
    from storage.workspace import Workspace

log = logging.getLogger(__name__)

ROLE_WEIGHTS = "weights"
ROLE_BUFFER = "buffer"
ROLE_PROTOTYPES = "prototypes"
ROLE_LOSS = "loss_state"
ROLE_HEAD_ARRAYS = "head_arrays"  # the head's weights + spec as npz: the torch-free inference path


class Embedder:
    """A model version ready to embed features (or text, through the frozen text encoder).

    ``model``: a torch head, or a :class:`~embedding.numpy_head.NumpyHead` (CPU, no torch)."""

    # The workspace's encoding cache (storage.vector_cache); load_embedder sets it. Item rows (tables
    # with an item_id) go through it; ad-hoc queries do not, so search traffic never grows it.
    text_cache: Any = None

    def __init__(self, model: EmbeddingHead | NumpyHead, *, model_version: int | None, input_kind: str = "features",
                 device: str = "cpu", batch_size: int = 4096) -> None:
        from embedding.numpy_head import NumpyHead

        if input_kind not in ("features", "text"):
            raise ValidationError(f"input_kind must be 'features' or 'text', got {input_kind!r}")
        self.uses_torch = not isinstance(model, NumpyHead)
        if not self.uses_torch and device != "cpu":
            raise ValidationError(f"a numpy head runs on the CPU only, not on {device!r}")
        self.model = model.to(device).eval() if self.uses_torch else model
        self.model_version = model_version
        self.input_kind = input_kind
        self.output_dim = int(model.spec.embedding_dim) if self.uses_torch else model.out_dim
        self.input_dim = int(model.spec.in_dim) if self.uses_torch else model.in_dim
        self.device = device
        self.batch_size = batch_size
        self._lock = threading.Lock()  # torch modules are not safe to call from threads at once

    def embed_features(self, x: np.ndarray) -> np.ndarray:
        """float32 (n, output_dim), rows L2-normalised. For text models, ``x`` = encoder outputs."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValidationError(
                f"features of shape {x.shape} do not fit model version {self.model_version} "
                f"(expects (n, {self.input_dim}))"
            )
        if not self.uses_torch:  # pure numpy: no shared mutable state, no lock needed
            return self.model(x, batch_size=self.batch_size)
        from embedding.model import embed_array

        with self._lock:
            return embed_array(self.model, x, batch_size=self.batch_size, device=self.device)

    def encode_texts(self, texts: list[str], *, cache: bool = False) -> np.ndarray:
        """The text encoder's outputs; with ``cache``, through the encoding cache (embedding.text_cache)."""
        from embedding.text_cache import cached_text_encoder

        return cached_text_encoder(self.text_cache if cache else None, self.device).encode(texts)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return self.embed_features(self.encode_texts(texts))

    def inputs_of(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        """The head's input matrix for a table: its ``features``, or its ``text`` encoded."""
        from storage.parquet_store import features_to_numpy

        names = table.schema.names
        if self.input_kind == "features":
            if "features" not in names:
                raise ValidationError(f"table has no 'features' column (columns: {names})")
            return features_to_numpy(table)
        if "text" not in names:
            raise ValidationError(f"table has no 'text' column (columns: {names})")
        return self.encode_texts([t or "" for t in table.column("text").to_pylist()],
                                 cache="item_id" in names)

    def embed_table(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        return self.embed_features(self.inputs_of(table))


_CACHE: dict[tuple[Any, ...], Embedder] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 8


def head_from_model_version(workspace: Workspace, mv: ModelVersion) -> EmbeddingHead:
    """Rebuild the architecture from the version's config and load its verified weights."""
    from embedding.model import EmbeddingHead, HeadSpec
    from storage.serialization import state_dict_from_bytes

    sha = mv.artifacts.get(ROLE_WEIGHTS)
    if not sha:
        raise ArtifactIntegrityError(f"model {mv.collection} v{mv.version} has no weights artifact")
    spec = HeadSpec.from_dict(mv.config.get("architecture") or {})
    model = EmbeddingHead(spec)
    state = state_dict_from_bytes(workspace.artifacts.get_bytes(sha))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ArtifactIntegrityError(
            f"weights of {mv.collection} v{mv.version} do not fit its recorded architecture: {e}"
        ) from e
    return model.eval()


def numpy_head_from_model_version(workspace: Workspace, mv: ModelVersion) -> NumpyHead | None:
    """The version's head as numpy arrays (no torch), or None for versions saved without them."""
    from embedding.numpy_head import NumpyHead

    sha = mv.artifacts.get(ROLE_HEAD_ARRAYS)
    return NumpyHead.from_bytes(workspace.artifacts.get_bytes(sha)) if sha else None


def load_embedder(workspace: Workspace, collection: str, model_version: int | None = None,
                  device: str = "cpu") -> Embedder:
    mv = workspace.production.model(collection, model_version)
    key = (workspace.settings.database_url, collection, mv.version, mv.artifacts.get(ROLE_WEIGHTS), device)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    head = numpy_head_from_model_version(workspace, mv) if device == "cpu" else None
    embedder = Embedder(head if head is not None else head_from_model_version(workspace, mv),
                        model_version=mv.version, input_kind=mv.config.get("input_kind", "features"), device=device)
    embedder.text_cache = workspace.vectors
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = embedder
    return embedder


def load_prototypes(workspace: Workspace, collection: str, model_version: int) -> Prototypes | None:
    mv = workspace.registry.models.get_model(collection, model_version)
    sha = mv.artifacts.get(ROLE_PROTOTYPES)
    if not sha:
        return None
    return Prototypes.from_bytes(workspace.artifacts.get_bytes(sha))


def load_buffer(workspace: Workspace, mv: ModelVersion):
    """The rehearsal buffer saved with a model version (None if it has none)."""
    from embedding.buffer import RehearsalBuffer

    sha = mv.artifacts.get(ROLE_BUFFER)
    return RehearsalBuffer.from_bytes(workspace.artifacts.get_bytes(sha)) if sha else None


def load_loss_state(workspace: Workspace, mv: ModelVersion) -> dict[str, Any] | None:
    from storage.serialization import state_dict_from_bytes

    sha = mv.artifacts.get(ROLE_LOSS)
    return state_dict_from_bytes(workspace.artifacts.get_bytes(sha)) if sha else None
