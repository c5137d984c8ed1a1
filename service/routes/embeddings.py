from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from service.deps import check_limit, check_text_lengths, model_for
from service.errors import BadInput, PayloadTooLarge, error_responses
from service.inference import Served, answer_headers, infer, prepare_input, vector_payload
from service.json_body import StrictJSONRoute
from service.runtimes.base import reading_input
from service.runtimes.jose import EmbeddingRuntime, Truncation
from service.schemas.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, Usage
from service.settings import Settings

router = APIRouter(tags=["embeddings"], route_class=StrictJSONRoute)


def texts_of(body: EmbeddingRequest) -> list[str]:
    return [body.input] if isinstance(body.input, str) else body.input


def limits(body: EmbeddingRequest, settings: Settings) -> None:
    texts = texts_of(body)
    check_limit(len(texts), settings.max_inputs, "inputs", "MAX_INPUTS", "input")
    check_text_lengths(settings, {f"input {i}": ("input", t) for i, t in enumerate(texts)})


EmbeddingModel = Annotated[
    Served[EmbeddingRequest, EmbeddingRuntime],
    Depends(model_for("embedding", EmbeddingRequest, EmbeddingRuntime, limits)),
]


@router.post(
    "/v1/embeddings",
    operation_id="createEmbeddings",
    response_model=EmbeddingResponse,
    responses=error_responses(400, 404, 413, 415, 429, 500, 503, 504),
)
async def create_embeddings(
    embedding: EmbeddingModel, request: Request, response: Response
) -> EmbeddingResponse:
    """Embed one text or a batch of texts as vectors (OpenAI-compatible).

    Limits (settings): at most MAX_INPUTS texts and MAX_TEXT_CHARS characters a text (413); a
    text over the model's length in tokens (JoSE: the longest length bucket in known words; BERT:
    that or max_seq_len in WordPieces) is 413 too, unless `truncate` asks to cut it to fit.
    """
    body, texts = embedding.body, texts_of(embedding.body)
    check_dimensions(body.dimensions, embedding.name, embedding.runtime)
    truncate = body.truncation_direction if body.truncate else None
    with embedding.arrival() as arrival:
        chars = sum(len(t) for t in texts)
        encoded = await prepare_input(
            chars, _prepare_all, embedding.runtime, texts, body.method, truncate
        )
        results = await infer(
            request,
            embedding,
            encoded,
            group=encoded[0].method,
            tokens=[e.tokens for e in encoded],
            arrival=arrival,
        )
    answer_headers(response, embedding, results)
    data = [
        Embedding(index=i, embedding=vector_payload(r.value, body.normalize, body.encoding_format))
        for i, r in enumerate(results)
    ]
    tokens = sum(e.tokens for e in encoded)
    return EmbeddingResponse(
        model=embedding.name,
        version=embedding.version,
        data=data,
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )


def check_dimensions(dimensions: int | None, model: str, runtime: EmbeddingRuntime) -> None:
    """OpenAI's `dimensions`: a model trained for shorter vectors (Matryoshka) could cut them;
    none served here is, so only the model's own length passes, as a no-op."""
    native = runtime.spec.dim
    if dimensions is not None and dimensions != native:
        raise BadInput(
            f"dimensions: model {model!r} makes vectors of {native} dimensions and cannot "
            f"shorten them (it is not trained for it); send dimensions {native} or leave it out",
            param="dimensions",
        )


def _prepare_all(
    runtime: EmbeddingRuntime, texts: list[str], method: str | None, truncate: Truncation | None
) -> list[Any]:
    prepared = []
    for i, text in enumerate(texts):
        try:
            with reading_input(f"input {i}"):
                prepared.append(runtime.prepare(text, method, truncate))
        except PayloadTooLarge as exc:
            # Which of the texts is too long, for a caller embedding a corpus in batches.
            raise PayloadTooLarge(f"input {i}: {exc.detail}", param="input") from exc
    return prepared
