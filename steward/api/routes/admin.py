"""``POST /promote`` and ``POST /rollback``: move production, token required, pair preloaded first."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from steward import shapes
from steward.api.schemas import AliasChangeOut, AliasTargetOut, PromoteRequest, RollbackRequest, UnpinRequest
from steward.api.service import ApiService, Service, require_token

router = APIRouter(dependencies=[Depends(require_token)])
API_ACTOR = "api"


def _actor(given: str | None) -> str:
    """Who acted, as recorded: the name the caller gave (marked as coming through the API)."""
    return f"{given.strip()} (api)" if given and given.strip() else API_ACTOR


def _change_out(svc: ApiService, change: Any, name: str) -> dict[str, Any]:
    """The change in its one shape (steward.shapes.alias_change, as `steward promote --json` prints it)."""
    pair = svc.state.current(name)
    target = svc.workspace.production.target(name)
    return shapes.alias_change(change, pinned=bool(target and target.pinned),
                               serving=None if pair is None else pair.describe())


@router.post("/promote", response_model=AliasChangeOut)
def promote(req: PromoteRequest, svc: Service) -> dict[str, Any]:
    name = svc.pick_collection(req.collection)
    production = svc.workspace.production
    production.model(name, req.model_version)  # NotFoundError -> 404
    pair = svc.preload(name, req.model_version, req.index_version)
    # Loading the pair read its artifacts through the checksummed store: no second verification.
    change = production.promote(name, req.model_version, pair.index_version, actor=_actor(req.actor),
                                reason=req.reason, check_artifacts=False)
    svc.state.refresh(name, force=True)
    return _change_out(svc, change, name)


@router.post("/rollback", response_model=AliasChangeOut)
def rollback(req: RollbackRequest, svc: Service) -> dict[str, Any]:
    name = svc.pick_collection(req.collection)
    production = svc.workspace.production
    if req.to_version is not None:
        production.model(name, req.to_version)  # NotFoundError -> 404
    change = production.rollback(name, req.to_version, actor=_actor(req.actor), reason=req.reason, pin=req.pin,
                                 prepare=lambda model, index: svc.preload(name, model, index), check_artifacts=False)
    svc.state.refresh(name, force=True)
    return _change_out(svc, change, name)


@router.post("/unpin", response_model=AliasTargetOut)
def unpin(req: UnpinRequest, svc: Service) -> dict[str, Any]:
    """Let automated runs promote again (versions rolled away from stay off-limits to them)."""
    name = svc.pick_collection(req.collection)
    production = svc.workspace.production
    target = production.unpin(name, actor=_actor(req.actor))
    return shapes.alias_target(target, rolled_away=sorted(production.rolled_away(name)))
