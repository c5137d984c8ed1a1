from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from service.deps import check_limit, check_text_lengths, model_for
from service.errors import BadInput, ClientClosedRequest, error_body, error_responses
from service.generation import GenerationTicket, TokenEvent
from service.inference import Served, answer_headers, until_disconnect
from service.json_body import StrictJSONRoute
from service.runtimes.base import reading_input
from service.runtimes.generation import GenerationRuntime
from service.schemas.generation import (
    GenerateChunk,
    GeneratedSample,
    GenerateRequest,
    GenerateResponse,
    LabelCondition,
)
from service.settings import Settings

router = APIRouter(tags=["generation"], route_class=StrictJSONRoute)

SSE_DONE = "data: [DONE]\n\n"


def limits(body: GenerateRequest, settings: Settings) -> None:
    check_limit(body.num_samples, settings.max_num_samples, "num_samples", "MAX_NUM_SAMPLES")
    check_limit(body.max_new_tokens or 1, settings.max_new_tokens, "max_new_tokens",
                "MAX_NEW_TOKENS")  # fmt: skip
    check_text_lengths(settings, {"the prompt": ("prompt", body.prompt)})


GenerationModel = Annotated[
    Served[GenerateRequest, GenerationRuntime],
    Depends(model_for("generation", GenerateRequest, GenerationRuntime, limits)),
]


@router.post(
    "/v1/generate",
    operation_id="generateText",
    response_model=GenerateResponse,
    responses={
        **error_responses(400, 404, 413, 415, 429, 500, 503, 504),
        200: {
            "description": "The samples; with `stream: true`, Server-Sent Events of GenerateChunk",
            "content": {"text/event-stream": {"schema": GenerateChunk.model_json_schema()}},
        },
    },
)
async def generate_text(
    generation: GenerationModel, request: Request, response: Response
) -> GenerateResponse | StreamingResponse:
    """Write texts under a condition (a label or a vector), optionally continuing a prompt.

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
    """
    body, runtime = generation.body, generation.runtime
    label = body.condition.label if isinstance(body.condition, LabelCondition) else None
    vector = None if isinstance(body.condition, LabelCondition) else body.condition.vector
    condition = runtime.condition(label, vector)
    guidance = runtime.guidance(label, body.guidance_scale)
    try:
        params = runtime.sampling(body.temperature, body.top_k, body.top_p)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    with reading_input("the prompt"):
        rows = await asyncio.to_thread(
            runtime.prepare,
            condition,
            body.prompt,
            body.num_samples,
            body.max_new_tokens,
            params,
            body.seed,
            guidance,
        )
    ticket = runtime.scheduler.submit(rows, generation.settings.request_timeout_s)
    if body.stream:
        # The status line waits for the first step: a request the model refuses there (a
        # condition that overflows it: 400), or one still queued at its deadline (504), gets its
        # status, not a 200 and an error event.
        try:
            first = await until_disconnect(request, ticket.updates())
        except (ClientClosedRequest, asyncio.CancelledError):
            ticket.cancel()
            raise
        if not first and not ticket.done.cancelled() and ticket.done.exception() is not None:
            raise ticket.done.exception()  # type: ignore[misc]
        return StreamingResponse(
            _events(ticket, generation.name, generation.version, first),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Model-Version": str(generation.version)},
        )
    try:
        await until_disconnect(request, asyncio.shield(ticket.done))
    except (ClientClosedRequest, asyncio.CancelledError):
        ticket.cancel()
        raise
    answer_headers(response, generation)
    return GenerateResponse(
        model=generation.name,
        version=generation.version,
        samples=[
            GeneratedSample(text=text, tokens=len(row.new_ids), finish_reason=row.finish_reason)
            for text, row in zip(ticket.texts, rows, strict=True)
            if row.finish_reason is not None
        ],
    )


async def _events(
    ticket: GenerationTicket, model: str, version: int, first: list[TokenEvent]
) -> AsyncIterator[str]:
    """The SSE body: a chunk per event of the ticket (`first`: those that came before the status
    line), then [DONE]; an error after the stream has started is sent as an `error` event (the
    status line has gone already). The events that arrived together go out in one write. Leaving
    early (the client disconnected) cancels the ticket, so its rows stop decoding."""
    remaining = len(ticket.rows)
    events = first
    try:
        while remaining:
            if not events:
                events = await ticket.updates()
            if not events:  # the ticket ended before its rows did: failed, or cancelled
                if not ticket.done.cancelled() and ticket.done.exception() is not None:
                    error = ticket.done.exception()
                    body = error_body(
                        getattr(error, "code", "internal_error"),
                        str(error),
                        getattr(error, "status_code", 500),
                    )
                    yield f"event: error\ndata: {json.dumps(body)}\n\n"
                return
            chunks = []
            for event in events:
                chunk = GenerateChunk(
                    model=model,
                    version=version,
                    index=event.index,
                    text=event.text,
                    tokens=event.token_count,
                    finish_reason=event.finish_reason,
                )
                chunks.append(f"data: {chunk.model_dump_json()}\n\n")
                if event.finish_reason is not None:
                    remaining -= 1
            yield "".join(chunks)
            events = []
        yield SSE_DONE
    finally:
        ticket.cancel()
