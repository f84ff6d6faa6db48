"""``POST /promote`` and ``POST /rollback``: move production, token required, pair preloaded first."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends

from steward.api.schemas import AliasChangeOut, PromoteRequest, RollbackRequest
from steward.api.service import ApiService, Service, require_token

router = APIRouter(dependencies=[Depends(require_token)])
API_ACTOR = "api"


def _change_out(svc: ApiService, change: Any, name: str) -> AliasChangeOut:
    pair = svc.state.current(name)
    return AliasChangeOut(**dataclasses.asdict(change), serving=None if pair is None else pair.describe())


@router.post("/promote", response_model=AliasChangeOut)
def promote(req: PromoteRequest, svc: Service) -> AliasChangeOut:
    name = svc.pick_collection(req.collection)
    production = svc.workspace.production
    production.model(name, req.model_version)  # NotFoundError -> 404
    pair = svc.preload(name, req.model_version, req.index_version)
    # Loading the pair read its artifacts through the checksummed store: no second verification.
    change = production.promote(name, req.model_version, pair.index_version, actor=API_ACTOR, reason=req.reason,
                                check_artifacts=False)
    svc.state.refresh(name, force=True)
    return _change_out(svc, change, name)


@router.post("/rollback", response_model=AliasChangeOut)
def rollback(req: RollbackRequest, svc: Service) -> AliasChangeOut:
    name = svc.pick_collection(req.collection)
    production = svc.workspace.production
    if req.to_version is not None:
        production.model(name, req.to_version)  # NotFoundError -> 404
    change = production.rollback(name, req.to_version, actor=API_ACTOR, reason=req.reason,
                                 prepare=lambda model, index: svc.preload(name, model, index), check_artifacts=False)
    svc.state.refresh(name, force=True)
    return _change_out(svc, change, name)
