from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.embedding_request import EmbeddingRequest
from ...models.embedding_response import EmbeddingResponse
from ...models.error_body import ErrorBody
from ...models.http_validation_error import HTTPValidationError
from ...types import Response


def _get_kwargs(
    *,
    body: EmbeddingRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/embeddings",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> EmbeddingResponse | ErrorBody | HTTPValidationError | None:
    if response.status_code == 200:
        response_200 = EmbeddingResponse.from_dict(response.json())

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
) -> Response[EmbeddingResponse | ErrorBody | HTTPValidationError]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: EmbeddingRequest,
) -> Response[EmbeddingResponse | ErrorBody | HTTPValidationError]:
    """Create Embeddings

     Embed one text or a batch of texts as vectors (OpenAI-compatible).

    Limits (settings): at most MAX_INPUTS texts and MAX_TEXT_CHARS characters a text (413); a
    text over the model's length in tokens (JoSE: the longest length bucket in known words; BERT:
    that or max_seq_len in WordPieces) is 413 too, unless `truncate` asks to cut it to fit.

    Args:
        body (EmbeddingRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[EmbeddingResponse | ErrorBody | HTTPValidationError]
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
    body: EmbeddingRequest,
) -> EmbeddingResponse | ErrorBody | HTTPValidationError | None:
    """Create Embeddings

     Embed one text or a batch of texts as vectors (OpenAI-compatible).

    Limits (settings): at most MAX_INPUTS texts and MAX_TEXT_CHARS characters a text (413); a
    text over the model's length in tokens (JoSE: the longest length bucket in known words; BERT:
    that or max_seq_len in WordPieces) is 413 too, unless `truncate` asks to cut it to fit.

    Args:
        body (EmbeddingRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        EmbeddingResponse | ErrorBody | HTTPValidationError
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: EmbeddingRequest,
) -> Response[EmbeddingResponse | ErrorBody | HTTPValidationError]:
    """Create Embeddings

     Embed one text or a batch of texts as vectors (OpenAI-compatible).

    Limits (settings): at most MAX_INPUTS texts and MAX_TEXT_CHARS characters a text (413); a
    text over the model's length in tokens (JoSE: the longest length bucket in known words; BERT:
    that or max_seq_len in WordPieces) is 413 too, unless `truncate` asks to cut it to fit.

    Args:
        body (EmbeddingRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[EmbeddingResponse | ErrorBody | HTTPValidationError]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: EmbeddingRequest,
) -> EmbeddingResponse | ErrorBody | HTTPValidationError | None:
    """Create Embeddings

     Embed one text or a batch of texts as vectors (OpenAI-compatible).

    Limits (settings): at most MAX_INPUTS texts and MAX_TEXT_CHARS characters a text (413); a
    text over the model's length in tokens (JoSE: the longest length bucket in known words; BERT:
    that or max_seq_len in WordPieces) is 413 too, unless `truncate` asks to cut it to fit.

    Args:
        body (EmbeddingRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        EmbeddingResponse | ErrorBody | HTTPValidationError
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
