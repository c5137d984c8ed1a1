from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from service.deps import AdminDep, RegistryDep
from service.errors import error_responses
from service.json_body import StrictJSONRoute
from service.schemas.common import MODEL_NAME_PATTERN
from service.schemas.models import ModelList, ModelStatus

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=StrictJSONRoute)

NamePath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name")]


@router.get("", operation_id="listModels", response_model=ModelList)
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model in the store: task, serving version, all versions with their state, manifest."""
    return ModelList(data=registry.statuses())


@router.get(
    "/{name}", operation_id="getModel", response_model=ModelStatus, responses=error_responses(404)
)
async def get_model(name: NamePath, registry: RegistryDep) -> ModelStatus:
    """One model, as in the list."""
    return registry.get(name).status()


@router.post(
    "/{name}/reload",
    operation_id="reloadModel",
    response_model=ModelStatus,
    dependencies=[AdminDep],
    responses=error_responses(401, 403, 404),
)
async def reload_model(name: NamePath, registry: RegistryDep) -> ModelStatus:
    """Admin: rescan this model's versions now (FAILED ones get another try). Bearer token."""
    return await registry.reload(name)
