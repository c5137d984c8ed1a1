from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.density_score_request import DensityScoreRequest
from ...models.density_score_response import DensityScoreResponse
from ...models.error_body import ErrorBody
from ...models.http_validation_error import HTTPValidationError
from ...types import Response


def _get_kwargs(
    *,
    body: DensityScoreRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/density/score",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> DensityScoreResponse | ErrorBody | HTTPValidationError | None:
    if response.status_code == 200:
        response_200 = DensityScoreResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = ErrorBody.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = HTTPValidationError.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())

        return response_429

    if response.status_code == 500:
        response_500 = ErrorBody.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if response.status_code == 504:
        response_504 = ErrorBody.from_dict(response.json())

        return response_504

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[DensityScoreResponse | ErrorBody | HTTPValidationError]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: DensityScoreRequest,
) -> Response[DensityScoreResponse | ErrorBody | HTTPValidationError]:
    """Score Density

     Log-density (nats) and bits per dimension of each row under the model.

    The default `logdet: "auto"` scores exactly models whose input_dim is at most
    MAX_EXACT_LOGDET_DIM and by the series above it; the response's `logdet` says which.

    Limits (settings): at most MAX_INPUTS rows (413); `logdet: "exact"` only for models whose
    input_dim is at most MAX_EXACT_LOGDET_DIM (400); a row of the wrong dimension gives 400.

    Args:
        body (DensityScoreRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DensityScoreResponse | ErrorBody | HTTPValidationError]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: DensityScoreRequest,
) -> DensityScoreResponse | ErrorBody | HTTPValidationError | None:
    """Score Density

     Log-density (nats) and bits per dimension of each row under the model.

    The default `logdet: "auto"` scores exactly models whose input_dim is at most
    MAX_EXACT_LOGDET_DIM and by the series above it; the response's `logdet` says which.

    Limits (settings): at most MAX_INPUTS rows (413); `logdet: "exact"` only for models whose
    input_dim is at most MAX_EXACT_LOGDET_DIM (400); a row of the wrong dimension gives 400.

    Args:
        body (DensityScoreRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DensityScoreResponse | ErrorBody | HTTPValidationError
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: DensityScoreRequest,
) -> Response[DensityScoreResponse | ErrorBody | HTTPValidationError]:
    """Score Density

     Log-density (nats) and bits per dimension of each row under the model.

    The default `logdet: "auto"` scores exactly models whose input_dim is at most
    MAX_EXACT_LOGDET_DIM and by the series above it; the response's `logdet` says which.

    Limits (settings): at most MAX_INPUTS rows (413); `logdet: "exact"` only for models whose
    input_dim is at most MAX_EXACT_LOGDET_DIM (400); a row of the wrong dimension gives 400.

    Args:
        body (DensityScoreRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DensityScoreResponse | ErrorBody | HTTPValidationError]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: DensityScoreRequest,
) -> DensityScoreResponse | ErrorBody | HTTPValidationError | None:
    """Score Density

     Log-density (nats) and bits per dimension of each row under the model.

    The default `logdet: "auto"` scores exactly models whose input_dim is at most
    MAX_EXACT_LOGDET_DIM and by the series above it; the response's `logdet` says which.

    Limits (settings): at most MAX_INPUTS rows (413); `logdet: "exact"` only for models whose
    input_dim is at most MAX_EXACT_LOGDET_DIM (400); a row of the wrong dimension gives 400.

    Args:
        body (DensityScoreRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DensityScoreResponse | ErrorBody | HTTPValidationError
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
