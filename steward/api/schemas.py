"""Request and response bodies of the search service (they make the OpenAPI schema).

Response bodies are the shapes of :mod:`steward.shapes` (what the CLI's ``--json`` prints, listed
in docs/JSON.md), declared here so the OpenAPI schema documents them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_K = 1000
MAX_BATCH = 1024
MAX_ID = 2**63 - 1  # versions and ids fit the registry's 64-bit columns; larger ones are a 422, not a 500


class SearchRequest(BaseModel):
    """Exactly one of ``vectors``, ``texts`` or ``item_ids``."""

    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(
        None, description="collection to search; may be left out when the service serves only one"
    )
    vectors: list[list[float]] | None = Field(
        None, max_length=MAX_BATCH, description="raw feature vectors, embedded with the production model"
    )
    texts: list[str] | None = Field(None, max_length=MAX_BATCH, description="query texts (text models only)")
    item_ids: list[str] | None = Field(
        None, max_length=MAX_BATCH, description="ids of indexed items to find neighbours of"
    )
    k: int = Field(10, ge=1, le=MAX_K, description=f"neighbours per query, 1..{MAX_K}")
    labels: list[str | None] | None = Field(
        None, max_length=MAX_BATCH,
        description="optional, one per query: the label its top neighbour should carry (shadow A/B hit rate; "
        "never changes the answer)",
    )
    expected_item_ids: list[str | None] | None = Field(
        None, max_length=MAX_BATCH,
        description="optional, one per query: an item that should be among the k neighbours (shadow A/B hit "
        "rate; never changes the answer)",
    )

    @model_validator(mode="after")
    def _one_query_kind(self) -> SearchRequest:
        given = [n for n in ("vectors", "texts", "item_ids") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of vectors, texts or item_ids (got {', '.join(given) or 'none'})"
            )
        if not getattr(self, given[0]):
            raise ValueError(f"{given[0]} is empty; give at least one query")
        n = len(getattr(self, given[0]))
        for extra in ("labels", "expected_item_ids"):
            values = getattr(self, extra)
            if values is not None and len(values) != n:
                raise ValueError(f"{extra} has {len(values)} entries but there are {n} queries; give one per "
                                 "query (null where unknown)")
        return self


class Hits(BaseModel):
    query: int = Field(description="the query's position in the request")
    query_item_id: str | None = Field(None, description="the query item, when the queries were item ids")
    item_ids: list[str] = Field(description="neighbours, best first")
    scores: list[float] = Field(description="their cosine similarities")


class SearchResponse(BaseModel):
    schema_version: int = 1
    collection: str
    model_version: int
    index_version: int
    k: int
    results: list[Hits]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    model_version: int = Field(..., ge=1, le=MAX_ID)
    index_version: int | None = Field(None, ge=1, le=MAX_ID)
    reason: str = Field("promoted through the API", max_length=500)
    actor: str | None = Field(None, max_length=100, description="who asks (recorded in the history)")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    to_version: int | None = Field(
        None, ge=1, le=MAX_ID, description="model version to go back to; default the previous"
    )
    reason: str = Field("rolled back through the API", max_length=500)
    actor: str | None = Field(None, max_length=100, description="who asks (recorded in the history)")
    pin: bool = Field(True, description="pin production: automated runs leave the restored pair alone")


class UnpinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    actor: str | None = Field(None, max_length=100, description="who asks (recorded)")


class AliasChangeOut(BaseModel):
    """A production change (the registry's own record), whether production is pinned now, and the pair
    the service serves."""

    schema_version: int = 1
    id: int
    collection: str
    alias: str
    from_model: int | None
    from_index: int | None
    to_model: int
    to_index: int | None
    actor: str
    reason: str
    at: datetime
    kind: str = Field(description="promote (a person), auto-promote (a maintenance run) or rollback")
    pinned: bool
    serving: dict[str, Any] | None = None


class AliasTargetOut(BaseModel):
    """Where the production alias points, and its pin."""

    schema_version: int = 1
    collection: str
    alias: str
    model_version: int
    index_version: int | None
    updated_at: datetime
    pinned_at: datetime | None
    pinned_by: str | None
    pinned_reason: str | None
    pinned: bool
    rolled_away: list[int] = Field(default_factory=list, description="versions automated runs never re-promote")
