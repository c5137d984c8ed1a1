"""Conditional text generation from a conditional-LM SavedModel (`models.generation.signatures`:
label_condition, prefill, step).

The request side turns a request into rows (`models.generation.decoding.make_rows`): the condition
vector (a label's embedding, or the caller's vector), `[CLS]` and the prompt's tokens, the
sampling parameters, and a random generator per sample. The rows then decode in the model's
`GenerationScheduler` (continuous batching, `service.generation`), not in the dynamic batcher:
a generation is many model calls, and requests join and leave between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.bert.tokenizer import tokens_to_text
from models.generation.decoding import (
    GenerationRow,
    Guidance,
    banned_ids,
    generate,
    label_guidance,
    make_rows,
)
from models.generation.sampling import SamplingParams
from models.store import GenerationManifest
from service.errors import BadInput, PayloadTooLarge
from service.generation import GenerationScheduler
from service.runtimes.base import Runtime, wordpiece_tokenizer
from service.runtimes.floats import model_floats
from service.settings import Settings


class GenerationRuntime(Runtime):
    task = "generation"
    family = "cln-lm"
    manifest_type = GenerationManifest
    spec: GenerationManifest

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        super().__init__(name, version, path, settings)
        self.tokenizer = wordpiece_tokenizer(path, self.spec.tokenizer)
        self.labels = self.spec.labels
        self.condition_dim = self.spec.condition_dim
        self.max_length = self.spec.max_length
        self.sampling_defaults = self.spec.sampling
        self._model: Any = None
        self._label_vectors: np.ndarray | None = None
        self._scheduler: GenerationScheduler | None = None

    def load(self) -> None:
        from models.bert.lm_reader import SavedModelLMStepModel

        self._model = SavedModelLMStepModel(self.path)
        if self.labels:
            self._label_vectors = self._model.label_condition(np.arange(len(self.labels)))

    @property
    def scheduler(self) -> GenerationScheduler:
        """This version's decode loop (made on first use, on the event loop)."""
        if self._scheduler is None:
            self._scheduler = GenerationScheduler(
                self.name,
                self._model,
                banned_ids(self.tokenizer),
                self.tokenizer.sep_id,
                lambda text, new_ids: tokens_to_text(self.tokenizer, new_ids, text),
                max_rows=self.settings.max_batch_size,
                max_queue=self.settings.max_queue,
                metrics=self.metrics,
            )
        return self._scheduler

    def condition(self, label: str | None, vector: Sequence[float] | None) -> np.ndarray:
        """The condition vector of a request: a label's embedding or the given vector (400 when
        it does not fit this model, or has a number beyond float32)."""
        if label is not None:
            if not self.labels or self._label_vectors is None:
                raise BadInput(
                    f"model {self.name!r} takes a vector condition, not labels", param="condition"
                )
            if label not in self.labels:
                raise BadInput(
                    f"unknown label {label!r}; this model's labels: {self.labels}",
                    param="condition",
                )
            return self._label_vectors[self.labels.index(label)]
        if vector is None:
            raise BadInput("give condition.label or condition.vector", param="condition")
        if self.condition_dim is None:
            raise BadInput(
                f"model {self.name!r} is conditioned on labels: {self.labels}", param="condition"
            )
        if len(vector) != self.condition_dim:
            raise BadInput(
                f"condition.vector has {len(vector)} numbers; this model takes "
                f"{self.condition_dim}",
                param="condition",
            )
        # A vector finite in float32 can still overflow the model's LayerNorms; the decode loop
        # refuses it at its first step (its log-probabilities are not finite).
        return model_floats(vector, "condition.vector")

    def guidance(self, label: str | None, scale: float | None) -> Guidance | None:
        """Guidance away from the other labels (None when scale is 0 or not given; 400 for a
        vector-conditioned model or one with a single label)."""
        if not scale:
            return None
        if label is None or not self.labels or self._label_vectors is None:
            raise BadInput(
                "guidance_scale needs a label condition (a label-conditioned model)",
                param="guidance_scale",
            )
        if len(self.labels) < 2:
            raise BadInput(
                f"guidance_scale needs two labels or more; {self.name!r} has one",
                param="guidance_scale",
            )
        return label_guidance(self._label_vectors, self.labels.index(label), scale)

    def prepare(
        self,
        condition: np.ndarray,
        prompt: str,
        num_samples: int,
        max_new_tokens: int | None,
        params: SamplingParams,
        seed: int | None,
        guidance: Guidance | None = None,
    ) -> list[GenerationRow]:
        rows = make_rows(
            self.tokenizer,
            condition,
            num_samples,
            max_new_tokens or self.settings.max_new_tokens,
            params,
            seed=seed,
            prompt=prompt,
            guidance=guidance,
        )
        prefix = len(rows[0].prefix_ids)
        if prefix >= self.max_length:
            raise PayloadTooLarge(
                f"the prompt is {prefix - 1} tokens; the most is {self.max_length - 2}: this "
                f"model has {self.max_length} positions for [CLS], the prompt and what it writes",
                param="prompt",
            )
        return rows

    def sampling(
        self, temperature: float | None, top_k: int | None, top_p: float | None
    ) -> SamplingParams:
        """The request's sampling parameters, the model's defaults where it says nothing."""
        d = self.sampling_defaults
        return SamplingParams(
            temperature=d.temperature if temperature is None else temperature,
            top_k=d.top_k if top_k is None else (top_k or None),
            top_p=d.top_p if top_p is None else top_p,
        )

    def warmup(self) -> None:
        # Batches of 1 and of the most rows, a prefill of a long prompt and some steps each.
        condition = (
            self._label_vectors[0]
            if self._label_vectors is not None
            else np.zeros(self.condition_dim or 0, np.float32)
        )
        for rows in sorted({1, self.settings.max_batch_size}):
            generate(
                self._model,
                self.tokenizer,
                make_rows(self.tokenizer, condition, rows, 4, SamplingParams(), seed=0),
                max_batch_rows=rows,
            )
