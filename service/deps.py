"""What routes need, as `Annotated[..., Depends(...)]` aliases (tests override them)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth import AUTHORIZATION_TWICE, REALM
from service.errors import Forbidden, NotReady, PayloadTooLarge, Unauthorized
from service.inference import Served
from service.registry import ModelRegistry
from service.runtimes.base import Runtime
from service.settings import Settings


class ModelRequest(Protocol):
    model: str | None
    version: int | str | None


B = TypeVar("B", bound=ModelRequest)
R = TypeVar("R", bound=Runtime)


# Every dependency is `async def`: FastAPI runs a plain `def` one on its thread pool, two thread
# hand-offs per request (docs/tuning.md#async-dependencies).
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]

_bearer = HTTPBearer(auto_error=False)


async def require_admin(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if settings.admin_token is None:
        raise Forbidden("admin endpoints are disabled: set ADMIN_TOKEN to enable them")
    if len(request.headers.getlist("authorization")) > 1:  # the bearer scheme reads the first
        raise Unauthorized(
            AUTHORIZATION_TWICE,
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_request"'},
        )
    if credentials is None:
        raise Unauthorized(
            "admin endpoint: send 'Authorization: Bearer <ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
        )
    expected = settings.admin_token.get_secret_value().encode()
    # Constant time, so the token cannot be guessed byte by byte from response times.
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise Forbidden("wrong admin token")


AdminDep = Depends(require_admin)


def model_for(
    task: str,
    body_type: type[B],
    runtime_type: type[R],
    limits: Callable[[B, Settings], None] | None = None,
) -> Callable[..., Awaitable[Served[B, R]]]:
    """The dependency of a `task` route: its JSON body (a `body_type`), the configured `limits`
    of the body (413, before any model is looked up), and the model the body names (else
    DEFAULT_<TASK>_MODEL, else the only one of the task) with the `runtime_type` of the version
    the body's `version` names (a number or a label; else the serving one).

    The body is declared here and nowhere else: declared in the route as well, it would be
    validated twice and a 422 would list each error twice.
    """
    default = f"default_{task}_model"
    if default not in Settings.model_fields:
        raise ValueError(f"no setting {default.upper()} for the {task} task")

    async def served(
        body: B, request: Request, registry: RegistryDep, settings: SettingsDep
    ) -> Served[B, R]:
        if limits is not None:
            limits(body, settings)
        model = registry.resolve(task, body.model, getattr(settings, default))
        request.state.model = model.name  # the request metrics' label
        runtime = model.runtime_for(body.version)
        if not isinstance(runtime, runtime_type):
            raise NotReady(f"model {model.name!r} has no {task} runtime loaded")
        return Served(body, model, runtime, settings)

    # FastAPI reads the body's schema from the annotation: this route's own.
    served.__annotations__["body"] = body_type
    return served


def check_limit(count: int, limit: int, what: str, setting: str, param: str | None = None) -> None:
    """One configured request limit: past it, 413 naming the setting (and the request field,
    `param`, as OpenAI's `error.param`: by default `what` itself)."""
    if count > limit:
        raise PayloadTooLarge(
            f"{what}: {count}; the most is {limit} ({setting})", param=param or what
        )


def check_text_lengths(settings: Settings, texts: dict[str, tuple[str, str]]) -> None:
    """MAX_TEXT_CHARS for every text of a request: {what the error calls it: (field, text)}."""
    for what, (field, text) in texts.items():
        check_limit(
            len(text), settings.max_text_chars, f"characters in {what}", "MAX_TEXT_CHARS", field
        )
