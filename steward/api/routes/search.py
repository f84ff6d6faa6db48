"""``POST /search``: nearest neighbours from the pair in service, by vectors, texts or item ids."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException

from core.errors import NotFoundError
from steward import shapes
from steward.api.schemas import SearchRequest, SearchResponse
from steward.api.service import BadQuery, Service
from steward.api.serving import ServingPair

router = APIRouter()


@router.post(
    "/search",
    response_model=SearchResponse,
    responses={404: {"description": "unknown collection or item id"}, 422: {"description": "bad query"}},
)
def search(req: SearchRequest, svc: Service) -> SearchResponse:
    serving = svc.state.snapshot()  # read once: this request uses this pair and nothing else
    if req.collection in serving:
        name = req.collection
    elif req.collection is None and len(serving) == 1:
        (name,) = serving
    else:  # not served: let the registry say why (unknown, ambiguous, or nothing promoted yet)
        name = svc.pick_collection(req.collection)
    pair = serving.get(name)
    if pair is None:
        raise HTTPException(
            503,
            f"collection {name!r} has no model in service yet (no production alias, or its first load failed; "
            "see /status)",
        )
    started = time.perf_counter()
    record = svc.queries.offer if svc.queries is not None and svc.queries.enabled else None
    response = answer(pair, req, record=record)
    if svc.shadow is not None:  # after the answer exists; offer() only queues (or drops), never waits
        svc.shadow.offer(pair, req, response, time.perf_counter() - started)
    return response


def _query_vectors(pair: ServingPair, req: SearchRequest) -> tuple[np.ndarray, np.ndarray | None]:
    """The query embeddings under the pair's model (texts encoded, features embedded), and the raw
    feature vectors they came from (None for texts)."""
    if req.texts is not None:
        if pair.input_kind != "text":
            raise BadQuery(f"model v{pair.model_version} of {pair.collection!r} takes feature vectors, not texts; "
                           "send 'vectors'")
        import pyarrow as pa

        return pair.embedder.embed_table(pa.table({"text": pa.array(req.texts, pa.string())})), None
    if pair.input_kind != "features":
        raise BadQuery(f"model v{pair.model_version} of {pair.collection!r} takes texts, not vectors; send 'texts'")
    dims = {len(v) for v in req.vectors or ()}
    if len(dims) != 1:
        raise BadQuery(f"query vectors have different lengths {sorted(dims)}; all must have the same")
    (dim,) = dims
    if pair.input_dim is not None and dim != pair.input_dim:
        raise BadQuery(f"query vectors have dimension {dim} but collection {pair.collection!r} has dimension "
                       f"{pair.input_dim}")
    x = np.asarray(req.vectors, dtype=np.float32)
    if not np.isfinite(x).all():
        raise BadQuery("query vectors contain NaN or infinite values")
    return pair.embedder.embed_features(x), x


# (collection, model version, query embeddings, raw feature queries or None): QueryRecorder.offer
Recorder = Callable[[str, int, np.ndarray, np.ndarray | None], None]


def neighbours(pair: ServingPair, req: SearchRequest, *, record: Recorder | None = None
               ) -> tuple[list[list[str]], np.ndarray | None]:
    """The neighbours' ids and scores of every query on one pair (what :func:`answer` shapes; the shadow
    A/B worker compares these directly). Raises BadQuery/NotFoundError for queries it cannot answer.

    ``record`` is given the query vectors once they are answered (item-id queries are items of the
    index, not new queries, and are not recorded)."""
    ntotal = int(getattr(pair.index, "ntotal", req.k))
    k = min(req.k, ntotal)
    if k < 1:
        return [[] for _ in _queries(req)], None
    if req.item_ids is not None:
        try:
            result = pair.index.search_ids(req.item_ids, k)
        except KeyError as e:
            raise NotFoundError(f"item id {e} is not in index version {pair.index_version}") from e
    else:
        vectors, inputs = _query_vectors(pair, req)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        result = pair.index.search(vectors, k)
        if record is not None:  # after the search: the sample costs the answer nothing
            record(pair.collection, pair.model_version, vectors, inputs)
    return result.item_ids, np.asarray(result.scores)


def answer(pair: ServingPair, req: SearchRequest, *, record: Recorder | None = None) -> SearchResponse:
    """Run one search on one pair. Raises BadQuery/NotFoundError for queries it cannot answer."""
    ids, scores = neighbours(pair, req, record=record)
    return _response(pair, req, ids, scores)


def _queries(req: SearchRequest) -> list[Any]:
    return req.vectors or req.texts or req.item_ids or []


def _response(pair: ServingPair, req: SearchRequest, ids: list[list[str]], scores: np.ndarray | None
              ) -> SearchResponse:
    """The answer in its one shape (steward.shapes.search_result, as `steward search --json` prints it)."""
    body = shapes.search_result(pair.collection, pair.model_version, pair.index_version, req.k, ids, scores,
                                req.item_ids)
    return SearchResponse.model_validate(body)
