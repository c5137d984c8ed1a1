from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.http_validation_error import HTTPValidationError
from ...models.qa_request import QARequest
from ...models.qa_response import QAResponse
from ...types import Response


def _get_kwargs(
    *,
    body: QARequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/qa",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | HTTPValidationError | QAResponse | None:
    if response.status_code == 200:
        response_200 = QAResponse.from_dict(response.json())

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
) -> Response[ErrorBody | HTTPValidationError | QAResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: QARequest,
) -> Response[ErrorBody | HTTPValidationError | QAResponse]:
    """Answer Question

     Read the passages and write the answer to the question, or `answer: null` if none has it
    (with `force_answer`, never null: the caller knows the passages hold an answer). With
    `return_evidence`, each candidate also says which passage characters it attended to.

    A passage longer than the model reads (its `max_passage_tokens`) is read whole, as
    overlapping windows half a window apart (or as far apart as the training run cut them, its
    manifest's `config.window_stride`) that vote like passages (with `span_search`, the best
    span of any window wins, among the windows that do not say "no answer" at the first step);
    `passage_index` still names the request's passage. Read by sentence (`read_by`, or the
    model's default: the demo's), each sentence is such a row. The
    question is read up to the model's `max_question_tokens` (in `GET /v1/models/{name}`'s
    manifest): the model was never trained on longer ones, and what lies past them is not read.

    Limits (settings): at most MAX_PASSAGES passages, and as many windows, `beam_size` at most
    MAX_BEAM_SIZE, and MAX_TEXT_CHARS characters for the question and each passage (413); read
    by sentence (`read_by`), at most MAX_SENTENCES rows.

    Args:
        body (QARequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | HTTPValidationError | QAResponse]
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
    body: QARequest,
) -> ErrorBody | HTTPValidationError | QAResponse | None:
    """Answer Question

     Read the passages and write the answer to the question, or `answer: null` if none has it
    (with `force_answer`, never null: the caller knows the passages hold an answer). With
    `return_evidence`, each candidate also says which passage characters it attended to.

    A passage longer than the model reads (its `max_passage_tokens`) is read whole, as
    overlapping windows half a window apart (or as far apart as the training run cut them, its
    manifest's `config.window_stride`) that vote like passages (with `span_search`, the best
    span of any window wins, among the windows that do not say "no answer" at the first step);
    `passage_index` still names the request's passage. Read by sentence (`read_by`, or the
    model's default: the demo's), each sentence is such a row. The
    question is read up to the model's `max_question_tokens` (in `GET /v1/models/{name}`'s
    manifest): the model was never trained on longer ones, and what lies past them is not read.

    Limits (settings): at most MAX_PASSAGES passages, and as many windows, `beam_size` at most
    MAX_BEAM_SIZE, and MAX_TEXT_CHARS characters for the question and each passage (413); read
    by sentence (`read_by`), at most MAX_SENTENCES rows.

    Args:
        body (QARequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | HTTPValidationError | QAResponse
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: QARequest,
) -> Response[ErrorBody | HTTPValidationError | QAResponse]:
    """Answer Question

     Read the passages and write the answer to the question, or `answer: null` if none has it
    (with `force_answer`, never null: the caller knows the passages hold an answer). With
    `return_evidence`, each candidate also says which passage characters it attended to.

    A passage longer than the model reads (its `max_passage_tokens`) is read whole, as
    overlapping windows half a window apart (or as far apart as the training run cut them, its
    manifest's `config.window_stride`) that vote like passages (with `span_search`, the best
    span of any window wins, among the windows that do not say "no answer" at the first step);
    `passage_index` still names the request's passage. Read by sentence (`read_by`, or the
    model's default: the demo's), each sentence is such a row. The
    question is read up to the model's `max_question_tokens` (in `GET /v1/models/{name}`'s
    manifest): the model was never trained on longer ones, and what lies past them is not read.

    Limits (settings): at most MAX_PASSAGES passages, and as many windows, `beam_size` at most
    MAX_BEAM_SIZE, and MAX_TEXT_CHARS characters for the question and each passage (413); read
    by sentence (`read_by`), at most MAX_SENTENCES rows.

    Args:
        body (QARequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | HTTPValidationError | QAResponse]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: QARequest,
) -> ErrorBody | HTTPValidationError | QAResponse | None:
    """Answer Question

     Read the passages and write the answer to the question, or `answer: null` if none has it
    (with `force_answer`, never null: the caller knows the passages hold an answer). With
    `return_evidence`, each candidate also says which passage characters it attended to.

    A passage longer than the model reads (its `max_passage_tokens`) is read whole, as
    overlapping windows half a window apart (or as far apart as the training run cut them, its
    manifest's `config.window_stride`) that vote like passages (with `span_search`, the best
    span of any window wins, among the windows that do not say "no answer" at the first step);
    `passage_index` still names the request's passage. Read by sentence (`read_by`, or the
    model's default: the demo's), each sentence is such a row. The
    question is read up to the model's `max_question_tokens` (in `GET /v1/models/{name}`'s
    manifest): the model was never trained on longer ones, and what lies past them is not read.

    Limits (settings): at most MAX_PASSAGES passages, and as many windows, `beam_size` at most
    MAX_BEAM_SIZE, and MAX_TEXT_CHARS characters for the question and each passage (413); read
    by sentence (`read_by`), at most MAX_SENTENCES rows.

    Args:
        body (QARequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | HTTPValidationError | QAResponse
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
