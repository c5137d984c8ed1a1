"""log p of data in their own units, and what the `score` signatures return
(`models.density.signatures` says what the outputs mean)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import tensorflow as tf

from models.density.logdet import LogDetConfig
from models.density.preprocessing import Preprocessing
from models.density.row_random import RowSharedStatelessGenerator
from models.density.signatures import BITS_PER_DIM_KEY, LOG_PROB_KEY

if TYPE_CHECKING:
    from models.density.iresnet_flow import IResNetFlow

_LN2 = math.log(2.0)


def data_log_prob(
    flow: IResNetFlow,
    preprocessing: Preprocessing,
    v: tf.Tensor,
    logdet: LogDetConfig | None = None,
    training: bool | None = None,
    generator: Any = None,
) -> tf.Tensor:
    """log p(v) [B] in nats of continuous values v [B, D] in data units: the flow's density of
    the preprocessed values plus the preprocessing's log-determinant (change of variables).

    Args:
        flow: the density model.
        preprocessing: data units -> the flow's input.
        v: [B, D] values in data units (dequantised ones for discrete data).
        logdet: the blocks' log-determinant method; exact when None.
        training: advance the spectral-norm power iterations (training steps).
        generator: randomness of the series and roulette estimators (a `tf.random.Generator`
            or a `RowSharedStatelessGenerator`).
    """
    y, pre_logdet = preprocessing.forward(tf.cast(v, flow.compute_dtype))
    return flow.log_prob(
        y, logdet, training=training, generator=cast(tf.random.Generator, generator)
    ) + tf.cast(pre_logdet, flow.compute_dtype)


def score_data(
    flow: IResNetFlow,
    preprocessing: Preprocessing,
    x: tf.Tensor,
    logdet: LogDetConfig | None,
    seed: int,
) -> dict[str, tf.Tensor]:
    """What the `score` / `score_exact` signatures return (`models.density.signatures`).

    Args:
        flow: the density model.
        preprocessing: data units -> the flow's input.
        x: [B, D] inputs in data units.
        logdet: a "series" config, or None for the exact log-determinant.
        seed: the fixed seed of the series' probes.
    """
    if logdet is not None and logdet.method != "series":
        # The roulette's random length would make a score vary from call to call.
        raise ValueError(f"score uses the exact or series log-det, not {logdet.method!r}")
    x = tf.cast(x, flow.compute_dtype)
    inside = preprocessing.in_support(x)
    # Rows outside the support are scored at a harmless point and then set to -inf, so that
    # NaNs from the logit of values outside (0, 1) never appear.
    point = tf.where(inside[:, None], preprocessing.score_point(x), tf.zeros_like(x) + 0.5)
    generator = RowSharedStatelessGenerator(seed, tf.shape(x)[0])
    log_prob = data_log_prob(flow, preprocessing, point, logdet, generator=generator)
    log_prob = tf.where(inside, log_prob, tf.constant(-np.inf, log_prob.dtype))
    bits = -log_prob / (preprocessing.input_dim * _LN2)
    return {
        LOG_PROB_KEY: tf.cast(log_prob, tf.float32),
        BITS_PER_DIM_KEY: tf.cast(bits, tf.float32),
    }
