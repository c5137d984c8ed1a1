from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.readiness import Readiness
from ...types import Response


def _get_kwargs() -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/readyz",
    }

    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Readiness | None:
    if response.status_code == 200:
        response_200 = Readiness.from_dict(response.json())

        return response_200

    if response.status_code == 503:
        response_503 = Readiness.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Readiness]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
) -> Response[Readiness]:
    """Ready

     200 when every model that can be loaded is loaded and warm; else 503 and which not.

    A model none of whose versions loads is named under `unavailable` with the reason; it holds
    the 503 while a version of it is being loaded, or, for at most READY_GRACE_S, still waits to
    be tried (incomplete, settling, due for a retry); a model whose versions all failed does not:
    the instance still serves every other model.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Readiness]
    """

    kwargs = _get_kwargs()

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
) -> Readiness | None:
    """Ready

     200 when every model that can be loaded is loaded and warm; else 503 and which not.

    A model none of whose versions loads is named under `unavailable` with the reason; it holds
    the 503 while a version of it is being loaded, or, for at most READY_GRACE_S, still waits to
    be tried (incomplete, settling, due for a retry); a model whose versions all failed does not:
    the instance still serves every other model.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Readiness
    """

    return sync_detailed(
        client=client,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
) -> Response[Readiness]:
    """Ready

     200 when every model that can be loaded is loaded and warm; else 503 and which not.

    A model none of whose versions loads is named under `unavailable` with the reason; it holds
    the 503 while a version of it is being loaded, or, for at most READY_GRACE_S, still waits to
    be tried (incomplete, settling, due for a retry); a model whose versions all failed does not:
    the instance still serves every other model.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Readiness]
    """

    kwargs = _get_kwargs()

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
) -> Readiness | None:
    """Ready

     200 when every model that can be loaded is loaded and warm; else 503 and which not.

    A model none of whose versions loads is named under `unavailable` with the reason; it holds
    the 503 while a version of it is being loaded, or, for at most READY_GRACE_S, still waits to
    be tried (incomplete, settling, due for a retry); a model whose versions all failed does not:
    the instance still serves every other model.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Readiness
    """

    return (
        await asyncio_detailed(
            client=client,
        )
    ).parsed
