"""Writes a density SavedModel: the `tf.Module` around a trained flow and its preprocessing, and
the export function (the signatures and what they return: `models.density.signatures`; reading
one back: `models.density.reader`)."""

from __future__ import annotations

import os

import tensorflow as tf

from models.density.iresnet_flow import IResNetFlow
from models.density.logdet import LogDetConfig
from models.density.preprocessing import Preprocessing
from models.density.residual_block import (
    DEFAULT_INVERSE_MAX_ITERATIONS,
    DEFAULT_INVERSE_TOLERANCE,
)
from models.density.sampling import sample_data
from models.density.scoring import score_data
from models.density.signatures import SIGNATURE_SAMPLE, SIGNATURE_SCORE, SIGNATURE_SCORE_EXACT
from models.saved_model import write_saved_model

# Power iterations per dense layer before export: the stored singular vectors must have converged
# for sigma (and so Lip(g) <= c, on which invertibility and the series rest) to hold.
EXPORT_POWER_ITERATIONS = 500
# Scoring defaults: more terms than in training, since (2) of `models.density.logdet` bounds the
# series' bias by D * sum_{k>n} c^k / k; with c = 0.9, n = 20 leaves 0.05 per dimension at most.
DEFAULT_SCORE_TERMS = 20
DEFAULT_SCORE_PROBES = 4
DEFAULT_SCORE_SEED = 1234


class DensityModule(tf.Module):
    """What the SavedModel holds: the flow's weights, its preprocessing and the functions.

    Args:
        flow: the trained flow (its averaged weights, when training kept an EMA), with converged
            power iterations (`export_density_saved_model` runs them).
        preprocessing: data units -> the flow's input.
        score_logdet: the "series" config of `score` (n_terms, n_probes, probe).
        score_seed: the fixed seed of its probes.
        inverse_tolerance: the fixed-point inverse's tolerance per block.
        inverse_max_iterations: its most steps per block.
    """

    def __init__(
        self,
        flow: IResNetFlow,
        preprocessing: Preprocessing,
        score_logdet: LogDetConfig,
        score_seed: int = DEFAULT_SCORE_SEED,
        inverse_tolerance: float = DEFAULT_INVERSE_TOLERANCE,
        inverse_max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
    ) -> None:
        super().__init__(name="iresnet_density")
        if score_logdet.method != "series":
            raise ValueError("score_logdet must be a series config")
        self.flow = flow
        self._preprocessing = preprocessing
        self._score_logdet = score_logdet
        self._score_seed = int(score_seed)
        self._tolerance = float(inverse_tolerance)
        self._max_iterations = int(inverse_max_iterations)
        # Variables, so that the loaded SavedModel still tells its shape and discreteness.
        self.input_dim = tf.Variable(preprocessing.input_dim, dtype=tf.int32, trainable=False)
        self.levels = tf.Variable(preprocessing.levels or 0, dtype=tf.int32, trainable=False)
        x_spec = tf.TensorSpec([None, preprocessing.input_dim], tf.float32, name="x")
        # No autograph: the model's control flow is tf.cond / tf.while_loop already, and
        # converting its code is a good part of the export's tracing.
        self.score = tf.function(self._score, input_signature=[x_spec], autograph=False)
        self.score_exact = tf.function(self._score_exact, input_signature=[x_spec], autograph=False)
        self.sample = tf.function(
            self._sample,
            input_signature=[
                tf.TensorSpec([], tf.int32, name="num_samples"),
                tf.TensorSpec([], tf.int64, name="seed"),
            ],
            autograph=False,
        )

    def _score(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return score_data(self.flow, self._preprocessing, x, self._score_logdet, self._score_seed)

    def _score_exact(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return score_data(self.flow, self._preprocessing, x, None, self._score_seed)

    def _sample(self, num_samples: tf.Tensor, seed: tf.Tensor) -> dict[str, tf.Tensor]:
        return sample_data(
            self.flow,
            self._preprocessing,
            num_samples,
            seed,
            self._tolerance,
            self._max_iterations,
        )


def export_density_saved_model(
    path: str | os.PathLike[str],
    flow: IResNetFlow,
    preprocessing: Preprocessing,
    *,
    score_logdet: LogDetConfig | None = None,
    score_seed: int = DEFAULT_SCORE_SEED,
    inverse_tolerance: float = DEFAULT_INVERSE_TOLERANCE,
    inverse_max_iterations: int = DEFAULT_INVERSE_MAX_ITERATIONS,
    power_iterations: int = EXPORT_POWER_ITERATIONS,
) -> list[str]:
    """Writes the SavedModel (saved_model.pb, variables/) into `path`.

    Runs `power_iterations` power iterations on every layer first (this changes the flow's stored
    singular vectors): with a single iteration per training step sigma may lag the weights, and
    an underestimated sigma would let Lip(g) exceed c.

    Args:
        path: the (existing or new) folder to write into.
        flow: the trained, built flow.
        preprocessing: data units -> the flow's input.
        score_logdet: the series of `score`; default `DEFAULT_SCORE_TERMS` terms and
            `DEFAULT_SCORE_PROBES` Rademacher probes.
        score_seed: the seed of its probes.
        inverse_tolerance: `sample`'s fixed-point tolerance per block.
        inverse_max_iterations: `sample`'s most fixed-point steps per block.
        power_iterations: power iterations per layer before export.

    Returns:
        The names of the exported signatures.
    """
    if not flow.built:
        raise ValueError("the flow must be built (initialised on data) before export")
    if power_iterations > 0:
        flow.update_spectral_norms(power_iterations)
    score_logdet = score_logdet or default_score_logdet()
    module = DensityModule(
        flow, preprocessing, score_logdet, score_seed, inverse_tolerance, inverse_max_iterations
    )
    functions = {
        SIGNATURE_SCORE: module.score,
        SIGNATURE_SCORE_EXACT: module.score_exact,
        SIGNATURE_SAMPLE: module.sample,
    }
    return write_saved_model(path, module, functions, default=SIGNATURE_SCORE)


def default_score_logdet() -> LogDetConfig:
    """The series `score` uses unless told otherwise (recorded in the manifest)."""
    return LogDetConfig(
        method="series", n_terms=DEFAULT_SCORE_TERMS, n_probes=DEFAULT_SCORE_PROBES,
        probe="rademacher",
    )  # fmt: skip
