"""POST /v1/qa: a question over one or more passages."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    field_validator,
)

from service.schemas.common import (
    HARD_MAX_INPUTS,
    HARD_MAX_TEXT_CHARS,
    ModelName,
    RequestBody,
    VersionSelector,
    blank_text,
    version_field,
)

Text = Annotated[str, StringConstraints(min_length=1, max_length=HARD_MAX_TEXT_CHARS)]

# Schema caps (422); the configured MAX_PASSAGES / MAX_BEAM_SIZE are lower and answer 413.
HARD_MAX_BEAM_SIZE = 64
HARD_MAX_ANSWER_TOKENS = 1024
HARD_MAX_LENGTH_PENALTY = 8.0


class QARequest(RequestBody):
    model: ModelName | None = Field(
        None, description="Model name; may be left out when the store holds one qa model."
    )
    version: VersionSelector | None = version_field()
    question: Text = Field(
        description="At most MAX_TEXT_CHARS characters (413 past it); read up to the model's "
        "`max_question_tokens` tokens. A question of only whitespace or invisible characters "
        "is 422."
    )
    passages: Annotated[
        list[Text], Field(min_length=1, max_length=HARD_MAX_INPUTS, fail_fast=True)
    ] = Field(description="Passages to read, decoded together; at most MAX_PASSAGES (413 past it).")

    max_answer_tokens: StrictInt | None = Field(
        None,
        ge=1,
        le=HARD_MAX_ANSWER_TOKENS,
        description="Longest answer in tokens; at most the model's own max_answer_tokens (400).",
    )
    beam_size: StrictInt | None = Field(
        None, ge=1, le=HARD_MAX_BEAM_SIZE, description="Beams (1: greedy); at most MAX_BEAM_SIZE."
    )
    extractive: StrictBool = Field(
        False,
        description="Answers must be spans of the passages (each token continues one), of whole "
        "words: no answer starts or ends inside a word the tokenizer splits (1989 is answered "
        "whole, not 198), unless max_answer_tokens stops it first (finish_reason 'length'). A "
        "model trained so (its manifest's decoding.extractive, as the demo's) always answers "
        "extractively: false does not turn it off.",
    )
    force_answer: StrictBool = Field(
        False,
        description="The passages are known to hold an answer: never null, unless they hold no "
        "text (only spaces or invisible characters: such a passage holds no answer, forced or "
        "not) or a generated (not extractive) answer is only pieces the model cannot spell "
        "([UNK]) that no passage holds. "
        '"No answer" may not win the first step, and the best answer of the passage most '
        "likely to hold one is returned even when every passage would say none.",
    )
    span_search: StrictBool = Field(
        False,
        description="Score whole spans instead of voting token by token (needs `extractive`; "
        "no `return_evidence`): every span of up to `max_answer_tokens` tokens from the "
        "likeliest starts is scored by its probability in its passage, and the best span of "
        "any passage is the answer. Candidates are the `beam_size` best spans.",
    )
    length_penalty: StrictFloat | None = Field(
        None,
        ge=0.0,
        le=HARD_MAX_LENGTH_PENALTY,
        allow_inf_nan=False,
        description="With `span_search`: spans rank by log-probability / (tokens + 1) ** "
        "length_penalty. 1 (the default) ranks by the mean log-probability per token; 0 by the "
        "probability itself, which favours short spans; above 1 longer spans are favoured "
        "further (CMRC 2018's figures: docs/benchmarks.md). Scores are then exp(that ranking "
        "score).",
    )

    read_by: Literal["passage", "sentence"] | None = Field(
        None,
        description="How each passage is read: 'passage' whole (a long one as overlapping "
        "windows), or 'sentence', each sentence a row that votes like a passage (a sentence "
        "that starts with 他/她/它 or he/she/it/they continues the one before it), so that a "
        "passage about several people does not lend one person's fact to another; at most "
        "MAX_SENTENCES rows (413). A fact whose subject is in another sentence without a "
        "pronoun ('张伟今年35岁。现在住在上海。') is found only reading by passage. Default: "
        "the model's (its manifest's decoding.read_by; the demo's is 'sentence').",
    )
    return_evidence: StrictBool = Field(
        False,
        description="Give each candidate its `evidence`: the passage characters its tokens "
        "attended to while they were written (heaviest spans first). Computed in the same "
        "decoding pass; versions exported before this field existed answer 400 "
        "(`evidence_unsupported`) until exported again.",
    )

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "question": "张伟住在哪里？",
                    "passages": ["张伟住在北京。张伟的职业是医生。", "李娜住在上海。"],
                }
            ]
        },
    }

    @field_validator("question")
    @classmethod
    def _question_has_text(cls, value: str) -> str:
        # A question of only spaces or invisible characters was answered from the passages alone:
        # the reader wrote whatever a passage most often answers, with a score, for no question.
        if (what := blank_text(value)) is not None:
            raise ValueError(f"the question {what}: there is nothing to answer")
        return value


class QAEvidence(BaseModel):
    passage_index: int = Field(description="The passage (index in `passages`).")
    start: int = Field(description="First character, an offset into that passage.")
    end: int = Field(description="One past the last character: text is passage[start:end].")
    text: str
    weight: float = Field(
        description="The answer tokens' mean attention on these characters' tokens (0-1)."
    )


class QACandidate(BaseModel):
    text: str
    score: float
    passage_index: int | None
    evidence: list[QAEvidence] | None = Field(
        None,
        description="With return_evidence: the passage spans the answer attended to, heaviest "
        "first (at most 3); null otherwise.",
    )


class QAResponse(BaseModel):
    model: str
    version: int
    answer: str | None = Field(
        description="null when no passage holds an answer. An answer that is a span of its "
        "passage (always so with `extractive`) is that passage's own characters, as written."
    )
    score: float
    passage_index: int | None
    finish_reason: Literal["stop", "length"] | None = Field(
        None,
        description="Why the answer ended (as /v1/generate's): 'stop', the reader ended it; "
        "'length', it reached max_answer_tokens and may be cut short (a number or a word longer "
        "than the limit: ask again with a larger max_answer_tokens, up to the model's own); "
        "null when there is no answer.",
    )
    candidates: list[QACandidate] = Field(
        description="The distinct answers of the finished beams (or spans, with span_search), "
        "best first; beams that end at different steps all count, so there may be more than "
        "beam_size. 'No answer' is not a candidate."
    )
