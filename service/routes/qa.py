from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from service.deps import check_limit, check_text_lengths, model_for
from service.errors import error_responses
from service.inference import Served, answer_headers, infer, prepare_input
from service.json_body import StrictJSONRoute
from service.runtimes.base import reading_input
from service.runtimes.qa import QAItem, QARuntime
from service.schemas.qa import QACandidate, QAEvidence, QARequest, QAResponse
from service.settings import Settings

router = APIRouter(tags=["qa"], route_class=StrictJSONRoute)


def limits(body: QARequest, settings: Settings) -> None:
    check_limit(len(body.passages), settings.max_passages, "passages", "MAX_PASSAGES")
    check_limit(body.beam_size or 1, settings.max_beam_size, "beam_size", "MAX_BEAM_SIZE")
    check_text_lengths(
        settings,
        {"the question": ("question", body.question)}
        | {f"passage {i}": ("passages", p) for i, p in enumerate(body.passages)},
    )


QAModel = Annotated[
    Served[QARequest, QARuntime], Depends(model_for("qa", QARequest, QARuntime, limits))
]


@router.post(
    "/v1/qa",
    operation_id="answerQuestion",
    response_model=QAResponse,
    responses=error_responses(400, 404, 413, 415, 429, 500, 503, 504),
)
async def answer_question(qa: QAModel, request: Request, response: Response) -> QAResponse:
    """Read the passages and write the answer to the question, or `answer: null` if none has it
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
    """
    body = qa.body
    with qa.arrival() as arrival:
        chars = len(body.question) + sum(len(p) for p in body.passages)
        item = await prepare_input(chars, _prepare, qa.runtime, body)
        [result] = await infer(
            request,
            qa,
            [item],
            group=item.options,
            tokens=[item.longest_prefix],
            rows=[item.rows],
            arrival=arrival,
        )
    answer_headers(response, qa, [result])
    answer = result.value
    return QAResponse(
        model=qa.name,
        version=qa.version,
        answer=answer.answer,
        score=answer.score,
        passage_index=answer.passage_index,
        finish_reason=answer.finish_reason,
        candidates=[
            QACandidate(
                text=text,
                score=score,
                passage_index=index,
                evidence=None
                if answer.evidence is None
                else [
                    QAEvidence(
                        passage_index=span.passage_index,
                        start=span.start,
                        end=span.end,
                        text=span.text,
                        weight=span.weight,
                    )
                    for span in answer.evidence[k]
                ],
            )
            for k, (text, score, index) in enumerate(answer.candidates)
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
            force_answer=body.force_answer,
            return_evidence=body.return_evidence,
            span_search=body.span_search,
            length_penalty=body.length_penalty,
            read_by=body.read_by,
        )
