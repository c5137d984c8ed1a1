"""Density scoring and sampling from an invertible-ResNet SavedModel (signatures score,
score_exact, sample; `models.density.signatures`), read by `models.density.reader`.

The request side checks the rows' shape and the log-det method; the batch side scores the rows of
every queued request of one group (runtime, method) in one model call and splits them back. A
row's score does not depend on its batch (the series' probes are shared by all rows), so batching
changes no result. Sampling inverts the flow by fixed-point iteration; each queued sampling request
is one model call of its own (its seed fixes its samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.store import DensityManifest
from service.errors import BadInput
from service.runtimes.base import BatchedRuntime
from service.runtimes.floats import model_floats
from service.settings import Settings

WARMUP_BATCH_SIZES = (1, 8)
WARMUP_SAMPLES = 2


@dataclass(frozen=True)
class ScoreItem:
    """One request's rows [B, D] (float32, data units) and its method (part of the group key)."""

    rows: np.ndarray = field(compare=False)
    exact: bool

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


@dataclass(frozen=True)
class SampleItem:
    num_samples: int
    seed: int


@dataclass(frozen=True)
class ScoreResult:
    log_prob: np.ndarray  # [B] float32; -inf outside a discrete model's range
    bits_per_dim: np.ndarray  # [B] float32


@dataclass(frozen=True)
class SampleResult:
    samples: np.ndarray  # [N, D] float32, data units
    iterations: np.ndarray  # [L] int32, fixed-point steps of each block's inverse
    last_change: np.ndarray  # [L] float32


class DensityRuntime(BatchedRuntime):
    task = "density"
    family = "iresnet"
    manifest_type = DensityManifest
    spec: DensityManifest

    def __init__(self, name: str, version: int, path: Path, settings: Settings) -> None:
        super().__init__(name, version, path, settings)
        self.input_dim = self.spec.input_dim
        self.levels = self.spec.levels
        self._model: Any = None

    @property
    def exact_allowed(self) -> bool:
        return self.input_dim <= self.settings.max_exact_logdet_dim

    def load(self) -> None:
        from models.density.reader import SavedModelDensity

        self._model = SavedModelDensity(self.path)
        if self._model.input_dim != self.input_dim:
            raise ValueError(
                f"{self.path}: the SavedModel takes {self._model.input_dim} dimensions, "
                f"the manifest says {self.input_dim}"
            )

    def prepare(self, inputs: Sequence[Sequence[float]], logdet: str) -> ScoreItem:
        """Rows as a float32 array and the log-det method ("auto": exact when allowed); 400 for a
        wrong dimension, a number beyond float32 or a refused exact log-det."""
        for i, row in enumerate(inputs):
            if len(row) != self.input_dim:
                raise BadInput(
                    f"input {i} has {len(row)} values; model {self.name!r} takes {self.input_dim}",
                    param="inputs",
                )
        # "auto": exact where it is allowed. Up to 64 dimensions it costs 1.1-1.6x the series
        # (demo-digits, docs/benchmarks.md) and is the density itself; the series' probes put a
        # row's score off by up to ~2 nats (KL 0.2-0.33 nats on 2-D fits that are 0.03-0.05).
        exact = logdet == "exact" or (logdet == "auto" and self.exact_allowed)
        if exact and not self.exact_allowed:
            raise BadInput(
                f"logdet 'exact' is refused for {self.input_dim} dimensions; the most is "
                f"{self.settings.max_exact_logdet_dim} (MAX_EXACT_LOGDET_DIM); use 'series'",
                param="logdet",
            )
        rows = model_floats(inputs, "inputs").reshape(len(inputs), self.input_dim)
        return ScoreItem(rows=rows, exact=exact)

    def run_batch(self, items: Sequence[Any]) -> list[Any]:
        # The batcher's group key keeps scores of either method and samples apart.
        if isinstance(items[0], SampleItem):
            return [self.sample(item) for item in items]
        rows = np.concatenate([item.rows for item in items], axis=0)
        out = self._model.score(rows, exact=items[0].exact)
        results: list[Any] = []
        start = 0
        for item in items:
            end = start + item.count
            results.append(ScoreResult(out["log_prob"][start:end], out["bits_per_dim"][start:end]))
            start = end
        return results

    def sample(self, item: SampleItem) -> SampleResult:
        out = self._model.sample(item.num_samples, item.seed)
        return SampleResult(out["samples"], out["iterations"], out["last_change"])

    def warmup(self) -> None:
        for size in WARMUP_BATCH_SIZES:
            rows = np.zeros((size, self.input_dim), np.float32).tolist()
            self.run_batch([self.prepare(rows, "series")])
            if self.exact_allowed:
                self.run_batch([self.prepare(rows, "exact")])
        self.run_batch([SampleItem(num_samples=WARMUP_SAMPLES, seed=0)])
