"""Request and response bodies of the search service (they make the OpenAPI schema)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storage.registry.entities import AliasChange

MAX_K = 1000
MAX_BATCH = 1024


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

    @model_validator(mode="after")
    def _one_query_kind(self) -> SearchRequest:
        given = [n for n in ("vectors", "texts", "item_ids") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of vectors, texts or item_ids (got {', '.join(given) or 'none'})"
            )
        if not getattr(self, given[0]):
            raise ValueError(f"{given[0]} is empty; give at least one query")
        return self


class Hits(BaseModel):
    item_ids: list[str]
    scores: list[float]


class SearchResponse(BaseModel):
    collection: str
    model_version: int
    index_version: int
    k: int
    results: list[Hits]


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    model_version: int = Field(..., ge=1)
    index_version: int | None = Field(None, ge=1)
    reason: str = Field("promoted through the API", max_length=500)
    actor: str | None = Field(None, max_length=100, description="who asks (recorded in the history)")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    to_version: int | None = Field(
        None, ge=1, description="model version to go back to; default the previous"
    )
    reason: str = Field("rolled back through the API", max_length=500)
    actor: str | None = Field(None, max_length=100, description="who asks (recorded in the history)")
    pin: bool = Field(True, description="pin production: automated runs leave the restored pair alone")


class UnpinRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = None
    actor: str | None = Field(None, max_length=100, description="who asks (recorded)")


@dataclass(frozen=True)
class AliasChangeOut(AliasChange):
    """A production change (the registry's own record) and the pair the service now serves."""

    serving: dict[str, Any] | None = None
