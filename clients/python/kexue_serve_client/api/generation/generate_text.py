from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.generate_request import GenerateRequest
from ...models.generate_response import GenerateResponse
from ...models.http_validation_error import HTTPValidationError
from ...types import Response


def _get_kwargs(
    *,
    body: GenerateRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/generate",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | GenerateResponse | HTTPValidationError | None:
    if response.status_code == 200:
        response_200 = GenerateResponse.from_dict(response.json())

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
) -> Response[ErrorBody | GenerateResponse | HTTPValidationError]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: GenerateRequest,
) -> Response[ErrorBody | GenerateResponse | HTTPValidationError]:
    """Generate Text

     Write texts under a condition (a label or a vector), optionally continuing a prompt.

    Limits (settings): `num_samples` at most MAX_NUM_SAMPLES, `max_new_tokens` at most
    MAX_NEW_TOKENS, the prompt at most MAX_TEXT_CHARS characters, and a prompt that leaves no
    room in the model's max_length (413); the samples' decoding rows (two a sample with
    `guidance_scale`) at most MAX_BATCH_SIZE (413). An unknown label, a vector of the wrong size,
    a vector number beyond float32, a vector the model's arithmetic overflows on (its
    log-probabilities are not finite), or `guidance_scale` without a label gives 400.
    A temperature under 1e-4 is greedy, as 0 is.
    With `stream: true` the answer is `text/event-stream`, sent once the first tokens are written
    (an error before them is a plain status): one `data: <GenerateChunk>` event per token, then
    `data: [DONE]` (or an `event: error` with an ErrorBody).

    Args:
        body (GenerateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | GenerateResponse | HTTPValidationError]
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
    body: GenerateRequest,
) -> ErrorBody | GenerateResponse | HTTPValidationError | None:
    """Generate Text

     Write texts under a condition (a label or a vector), optionally continuing a prompt.

    Limits (settings): `num_samples` at most MAX_NUM_SAMPLES, `max_new_tokens` at most
    MAX_NEW_TOKENS, the prompt at most MAX_TEXT_CHARS characters, and a prompt that leaves no
    room in the model's max_length (413); the samples' decoding rows (two a sample with
    `guidance_scale`) at most MAX_BATCH_SIZE (413). An unknown label, a vector of the wrong size,
    a vector number beyond float32, a vector the model's arithmetic overflows on (its
    log-probabilities are not finite), or `guidance_scale` without a label gives 400.
    A temperature under 1e-4 is greedy, as 0 is.
    With `stream: true` the answer is `text/event-stream`, sent once the first tokens are written
    (an error before them is a plain status): one `data: <GenerateChunk>` event per token, then
    `data: [DONE]` (or an `event: error` with an ErrorBody).

    Args:
        body (GenerateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | GenerateResponse | HTTPValidationError
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: GenerateRequest,
) -> Response[ErrorBody | GenerateResponse | HTTPValidationError]:
    """Generate Text

     Write texts under a condition (a label or a vector), optionally continuing a prompt.

    Limits (settings): `num_samples` at most MAX_NUM_SAMPLES, `max_new_tokens` at most
    MAX_NEW_TOKENS, the prompt at most MAX_TEXT_CHARS characters, and a prompt that leaves no
    room in the model's max_length (413); the samples' decoding rows (two a sample with
    `guidance_scale`) at most MAX_BATCH_SIZE (413). An unknown label, a vector of the wrong size,
    a vector number beyond float32, a vector the model's arithmetic overflows on (its
    log-probabilities are not finite), or `guidance_scale` without a label gives 400.
    A temperature under 1e-4 is greedy, as 0 is.
    With `stream: true` the answer is `text/event-stream`, sent once the first tokens are written
    (an error before them is a plain status): one `data: <GenerateChunk>` event per token, then
    `data: [DONE]` (or an `event: error` with an ErrorBody).

    Args:
        body (GenerateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | GenerateResponse | HTTPValidationError]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: GenerateRequest,
) -> ErrorBody | GenerateResponse | HTTPValidationError | None:
    """Generate Text

     Write texts under a condition (a label or a vector), optionally continuing a prompt.

    Limits (settings): `num_samples` at most MAX_NUM_SAMPLES, `max_new_tokens` at most
    MAX_NEW_TOKENS, the prompt at most MAX_TEXT_CHARS characters, and a prompt that leaves no
    room in the model's max_length (413); the samples' decoding rows (two a sample with
    `guidance_scale`) at most MAX_BATCH_SIZE (413). An unknown label, a vector of the wrong size,
    a vector number beyond float32, a vector the model's arithmetic overflows on (its
    log-probabilities are not finite), or `guidance_scale` without a label gives 400.
    A temperature under 1e-4 is greedy, as 0 is.
    With `stream: true` the answer is `text/event-stream`, sent once the first tokens are written
    (an error before them is a plain status): one `data: <GenerateChunk>` event per token, then
    `data: [DONE]` (or an `event: error` with an ErrorBody).

    Args:
        body (GenerateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | GenerateResponse | HTTPValidationError
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
