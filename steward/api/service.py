"""What every endpoint shares: settings, the workspace, the serving state, and the helpers that turn
a request into a collection, a loaded pair or an authorised caller."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Header, HTTPException, Request

from core.errors import ConflictError, NotFoundError
from steward.api.gallery_map import GalleryReader, MapCache, read_index_sample
from steward.api.serving import ServingPair, ServingState
from steward.api.shadow import ShadowMirror

log = logging.getLogger(__name__)


class BadQuery(Exception):
    """A request the service understood but cannot answer as asked (-> 422)."""


@dataclass(frozen=True)
class ApiService:
    settings: Any
    workspace: Any
    state: ServingState
    maps: MapCache = field(default_factory=MapCache)  # the dashboard's gallery maps, per index
    gallery_reader: GalleryReader = read_index_sample  # how a map reads vectors (tests pass a double)
    shadow: ShadowMirror | None = None  # shadow A/B (steward.api.shadow), when shadow.fraction > 0
    # recent query vectors sampled for index tuning (embedding.index.query_sample), when index.query_sample_size > 0
    queries: Any = None

    def known_collections(self) -> list[str]:
        return sorted(c.name for c in self.workspace.registry.catalog.list_collections())

    def pick_collection(self, name: str | None) -> str:
        names = self.known_collections()
        if name is not None:
            if name not in names:
                raise NotFoundError(f"collection {name!r} does not exist; known: {', '.join(names) or 'none'}")
            return name
        served = sorted(self.state.snapshot())
        candidates = served if len(served) == 1 else names
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise NotFoundError("no collection exists yet; ingest data first (steward ingest)")
        raise BadQuery(f"several collections exist ({', '.join(candidates)}); name one with 'collection'")

    def preload(self, name: str, model_version: int, index_version: int | None) -> ServingPair:
        """Load and verify a pair before the alias points at it; production stays put on failure."""
        try:
            return self.state.load(name, model_version, index_version)
        except (NotFoundError, ConflictError):
            raise
        except Exception as e:
            log.exception("refusing to switch %s to model v%s: it does not load", name, model_version)
            raise ConflictError(
                f"model v{model_version} (index {index_version or 'newest'}) of {name!r} could not be "
                f"loaded, production is unchanged: {type(e).__name__}: {e}"
            ) from e


def service(request: Request) -> ApiService:
    """FastAPI dependency: the app's :class:`ApiService`."""
    return request.app.state.service


Service = Annotated[ApiService, Depends(service)]


def require_token(request: Request, authorization: str | None = Header(None)) -> None:
    """FastAPI dependency for mutating endpoints: a bearer token equal to the ``api_token`` setting."""
    token = service(request).settings.api_token
    if not token:
        raise HTTPException(
            403,
            "promote and rollback are disabled on this service: no api_token is configured "
            "(set STEWARD_API_TOKEN or api_token in steward.toml and restart)",
        )
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise HTTPException(401, "send the API token as 'Authorization: Bearer <token>'", {"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "the API token is wrong", {"WWW-Authenticate": "Bearer"})
