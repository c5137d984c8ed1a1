from __future__ import annotations

import base64
from typing import Any

import numpy as np
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
from service.runtimes.jose import EmbeddingRuntime
from service.schemas.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, Usage

router = APIRouter(tags=["embeddings"])


@router.post(
    "/v1/embeddings",
    operation_id="createEmbeddings",
    response_model=EmbeddingResponse,
    responses=error_responses(400, 404, 413, 429, 500, 503, 504),
)
async def create_embeddings(
    body: EmbeddingRequest,
    request: Request,
    response: Response,
    registry: RegistryDep,
    settings: SettingsDep,
) -> EmbeddingResponse:
    """Embed one text or a batch of texts as vectors (OpenAI-compatible).

    Limits (settings): at most MAX_INPUTS texts and MAX_TEXT_CHARS characters a text (413); a
    BERT encoder also refuses a text over its longest length bucket in tokens (413).
    """
    texts = [body.input] if isinstance(body.input, str) else body.input
    check_limit(len(texts), settings.max_inputs, "inputs", "MAX_INPUTS")
    check_text_lengths(settings, {f"input {i}": t for i, t in enumerate(texts)})
    model = registry.resolve("embedding", body.model, settings.default_embedding_model)
    request.state.model = model.name
    runtime = model.runtime
    if not isinstance(runtime, EmbeddingRuntime):
        raise NotReady(f"model {model.name!r} has no embedding runtime loaded")
    with model.batcher.arrival() as arrival:
        # Tokenising (jieba) is CPU work: off the event loop unless the texts are short.
        encoded = await prepare_input(
            sum(len(t) for t in texts), _prepare_all, runtime, texts, body.method
        )
        method = encoded[0].method
        results = await until_disconnect(
            request,
            model.batcher.submit_many(
                [BatchItem(runtime, e) for e in encoded],
                tokens=[e.tokens for e in encoded],
                group=(id(runtime), method),
                timeout_s=settings.request_timeout_s,
                arrival=arrival,
            ),
        )
    timing_headers(response, list(results))
    data = []
    for i, r in enumerate(results):
        vector = np.asarray(r.value, dtype=np.float32)
        if body.normalize:
            norm = float(np.linalg.norm(vector))
            vector = vector / norm if norm > 0 else vector
        payload: list[float] | str = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else vector.tolist()
        )
        data.append(Embedding(index=i, embedding=payload))
    tokens = sum(e.tokens for e in encoded)
    response.headers["X-Model-Version"] = str(runtime.version)
    return EmbeddingResponse(
        model=model.name,
        version=runtime.version,
        data=data,
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _prepare_all(runtime: EmbeddingRuntime, texts: list[str], method: str | None) -> list[Any]:
    prepared = []
    for i, text in enumerate(texts):
        with reading_input(f"input {i}"):
            prepared.append(runtime.prepare(text, method))
    return prepared
