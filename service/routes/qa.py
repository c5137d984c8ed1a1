from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.deps import (
    RegistryDep,
    SettingsDep,
    check_limit,
    check_text_lengths,
    prepare_input,
    timing_headers,
    until_disconnect,
)
from service.errors import NotReady, error_responses
from service.registry import BatchItem
from service.runtimes.base import reading_input
from service.runtimes.qa import QAItem, QARuntime
from service.schemas.qa import QACandidate, QARequest, QAResponse

router = APIRouter(tags=["qa"])


@router.post(
    "/v1/qa",
    operation_id="answerQuestion",
    response_model=QAResponse,
    responses=error_responses(400, 404, 413, 429, 500, 503, 504),
)
async def answer_question(
    body: QARequest,
    request: Request,
    response: Response,
    registry: RegistryDep,
    settings: SettingsDep,
) -> QAResponse:
    """Read the passages and write the answer to the question, or `answer: null` if none has it.

    Limits (settings): at most MAX_PASSAGES passages, `beam_size` at most MAX_BEAM_SIZE, and
    MAX_TEXT_CHARS characters for the question and each passage (413).
    """
    check_limit(len(body.passages), settings.max_passages, "passages", "MAX_PASSAGES")
    check_limit(body.beam_size or 1, settings.max_beam_size, "beam_size", "MAX_BEAM_SIZE")
    check_text_lengths(
        settings,
        {"the question": body.question} | {f"passage {i}": p for i, p in enumerate(body.passages)},
    )
    model = registry.resolve("qa", body.model, settings.default_qa_model)
    request.state.model = model.name
    runtime = model.runtime
    if not isinstance(runtime, QARuntime):
        raise NotReady(f"model {model.name!r} has no qa runtime loaded")
    with model.batcher.arrival() as arrival:
        chars = len(body.question) + sum(len(p) for p in body.passages)
        item = await prepare_input(chars, _prepare, runtime, body)
        [result] = await until_disconnect(
            request,
            model.batcher.submit_many(
                [BatchItem(runtime, item)],
                tokens=[item.longest_prefix],
                rows=[item.rows],
                group=(id(runtime), item.options),
                timeout_s=settings.request_timeout_s,
                arrival=arrival,
            ),
        )
    timing_headers(response, [result])
    response.headers["X-Model-Version"] = str(runtime.version)
    answer = result.value
    return QAResponse(
        model=model.name,
        version=runtime.version,
        answer=answer.answer,
        score=answer.score,
        passage_index=answer.passage_index,
        candidates=[
            QACandidate(text=text, score=score, passage_index=index)
            for text, score, index in answer.candidates
        ],
    )


def _prepare(runtime: QARuntime, body: QARequest) -> QAItem:
    with reading_input("the question or a passage"):
        return runtime.prepare(
            body.question,
            body.passages,
            max_answer_tokens=body.max_answer_tokens,
            beam_size=body.beam_size,
            extractive=body.extractive,
        )
