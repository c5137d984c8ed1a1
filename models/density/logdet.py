"""log det(I + J_g(x)) for a residual block F(x) = x + g(x) with Lip(g) < 1: exact, truncated power
series with Hutchinson's trace estimator, and the unbiased Russian-roulette estimator.

Behrmann et al., "Invertible Residual Networks" (ICML 2019), Sec. 3: since ||J_g||_2 < 1, the
matrix logarithm's series converges and

    log det(I + J_g) = tr(log(I + J_g)) = sum_{k>=1} (-1)^(k+1) tr(J_g^k) / k.            (1)

Each trace is estimated with Hutchinson's estimator tr(A) = E[v^T A v] for probes v with
E[v v^T] = I (Gaussian or Rademacher; Hutchinson 1990), and v^T J^k is built by k vector-Jacobian
products, so J is never formed: the cost is n backward passes, not D of them. Cutting (1) after n
terms errs by at most (their truncation bound, tight for J = -Lip(g) I)

    |log det(I + J_g) - PS(J_g, n)| <= -D (log(1 - Lip(g)) + sum_{k<=n} Lip(g)^k / k).     (2)

Chen et al., "Residual Flows for Invertible Generative Modeling" (NeurIPS 2019), Sec. 3.1, remove
that bias with a "Russian roulette": draw the number of terms N at random and weight term k by
1 / P(N >= k), so that E_N[sum_{k<=N} a_k / P(N >= k)] = sum_k a_k exactly. The first
`n_exact_terms` terms are always kept (weight 1) since they carry most of the value and would
otherwise dominate the variance. The estimate's variance is finite when the terms shrink faster
than P(N >= k): with a geometric N, roughly Lip(g)^2 < 1 - p.

The exact method (a per-example Jacobian by `batch_jacobian`, then `slogdet`) costs D backward
passes and O(D^3); it is the reference the estimators are tested against and the right choice for
small D (toy 2-D densities, tabular data).

Gradients go through the n vector-Jacobian products by double backpropagation, which keeps all n
of them in memory. `LogDetConfig(neumann_gradient=True)` uses instead Chen et al.'s Neumann-series
gradient estimator (Sec. 3.2): since d log det(I + J) = tr((I + J)^-1 dJ) and
(I + J)^-1 = sum_{k>=0} (-1)^k J^k,

    d log det(I + J) = E_v[ (sum_{k>=0} (-1)^k v^T J^k) dJ v ],                            (3)

so the row vector in brackets is accumulated without recording (no graph), and the gradient is one
differentiable vector-Jacobian product of it: memory of one backward pass whatever the number of
terms. Term k of (3) carries the same truncation or roulette weight as term k + 1 of (1), so (3) is
the gradient of (1)'s estimate in expectation (unbiased under the roulette).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import tensorflow as tf

ResidualFn = Callable[[tf.Tensor], tf.Tensor]
VjpFn = Callable[[tf.Tensor], tf.Tensor]
LogDetMethod = Literal["exact", "series", "roulette"]
ProbeKind = Literal["gaussian", "rademacher"]
TermDistribution = Literal["geometric", "poisson"]

# A handful of terms is the usual training budget; with Lip(g) = 0.9 the bound (2) at D = 2 is
# 0.37 for n = 10, so evaluation wants more terms or the exact/unbiased methods.
DEFAULT_SERIES_TERMS = 10
# Residual Flows: N ~ Geometric(0.5) on {1, 2, ...} on top of 2 always-computed terms.
DEFAULT_EXACT_TERMS = 2
DEFAULT_GEOMETRIC_P = 0.5
DEFAULT_POISSON_RATE = 2.0


@dataclass(frozen=True)
class LogDetConfig:
    """How a residual block's log det(I + J_g) is computed.

    Attributes:
        method: "exact" (Jacobian + slogdet; O(D^3), for small D), "series" (n_terms of (1) with
            Hutchinson probes; biased by at most (2)) or "roulette" (unbiased, random length).
        n_terms: terms of the truncated series ("series").
        n_probes: Hutchinson probes per example, averaged; more probes lower the variance.
        probe: "gaussian" or "rademacher" (+-1; lower variance for the same trace).
        n_exact_terms: terms always kept by the roulette.
        distribution: law of the roulette's extra term count N >= 1: "geometric" (P(N >= k) =
            (1 - p)^(k - 1)) or "poisson" (N = 1 + Poisson(rate)).
        geometric_p: success probability of the geometric law; larger p, fewer terms, more variance.
        poisson_rate: rate of the Poisson law.
        max_terms: optional cap on the roulette's total terms, to bound the worst-case cost; a
            capped roulette is biased again (by far less than a series of the same length).
        neumann_gradient: ("series", "roulette") differentiate by the Neumann series (3) instead of
            backpropagating through every term: the same value, the same expected gradient, the
            memory of one vector-Jacobian product.
    """

    method: LogDetMethod = "exact"
    n_terms: int = DEFAULT_SERIES_TERMS
    n_probes: int = 1
    probe: ProbeKind = "gaussian"
    n_exact_terms: int = DEFAULT_EXACT_TERMS
    distribution: TermDistribution = "geometric"
    geometric_p: float = DEFAULT_GEOMETRIC_P
    poisson_rate: float = DEFAULT_POISSON_RATE
    max_terms: int | None = None
    neumann_gradient: bool = False

    def __post_init__(self) -> None:
        if self.method not in ("exact", "series", "roulette"):
            raise ValueError(f"method must be exact, series or roulette, not {self.method!r}")
        if self.n_terms < 1 or self.n_probes < 1 or self.n_exact_terms < 0:
            raise ValueError("n_terms and n_probes must be >= 1 and n_exact_terms >= 0")
        if self.probe not in ("gaussian", "rademacher"):
            raise ValueError(f"probe must be gaussian or rademacher, not {self.probe!r}")
        if self.distribution not in ("geometric", "poisson"):
            raise ValueError(
                f"distribution must be geometric or poisson, not {self.distribution!r}"
            )
        if not 0 < self.geometric_p < 1:
            raise ValueError(f"geometric_p must be in (0, 1), not {self.geometric_p}")
        if not self.poisson_rate > 0:
            raise ValueError(f"poisson_rate must be > 0, not {self.poisson_rate}")
        if self.max_terms is not None and self.max_terms < max(1, self.n_exact_terms):
            raise ValueError("max_terms must be >= max(1, n_exact_terms)")


def _flat_dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Row-wise <a_i, b_i> of [B, ...] tensors: [B]."""
    return tf.reduce_sum(tf.reshape(a * b, (tf.shape(a)[0], -1)), axis=-1)


def _residual_and_vjp(residual: ResidualFn, x: tf.Tensor) -> tuple[tf.Tensor, VjpFn]:
    """g(x) and w -> w^T J_g(x), row by row (g acts on each example alone).

    One forward pass is recorded on a persistent tape and differentiated as often as asked; an
    enclosing tape records those backward passes too, so the result stays differentiable in the
    weights (double backpropagation).
    """
    tape = tf.GradientTape(persistent=True, watch_accessed_variables=False)
    with tape:
        tape.watch(x)
        gx = residual(x)

    def vjp(w: tf.Tensor) -> tf.Tensor:
        return tape.gradient(gx, x, output_gradients=w)

    return gx, vjp


def sample_probes(
    shape: tf.TensorShape | tuple[int, ...] | tf.Tensor,
    dtype: tf.DType,
    probe: ProbeKind,
    generator: tf.random.Generator,
) -> tf.Tensor:
    """Hutchinson probes v with E[v] = 0, E[v v^T] = I: standard normal or Rademacher (+-1)."""
    if probe == "gaussian":
        return generator.normal(shape, dtype=dtype)
    signs = generator.uniform(shape, minval=0, maxval=2, dtype=tf.int32)
    return tf.cast(2 * signs - 1, dtype)


def _tile_batch(x: tf.Tensor, copies: int) -> tf.Tensor:
    """[B, ...] -> [copies * B, ...], copy-major, so [copies, B] reshapes back."""
    return tf.concat([x] * copies, axis=0) if copies > 1 else x


def _mean_over_probes(values: tf.Tensor, copies: int) -> tf.Tensor:
    return tf.reduce_mean(tf.reshape(values, (copies, -1)), axis=0)


def exact_logdet(residual: ResidualFn, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """log det(I + J_g(x)) from the full per-example Jacobian.

    Args:
        residual: g, applied to each row of its [B, ...] input independently.
        x: [B, ...] inputs.

    Returns:
        (g(x) [B, ...], log det [B]). The determinant is positive when Lip(g) < 1, so its log is
        the log of the absolute value.
    """
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        gx = residual(x)
        flat_gx = tf.reshape(gx, (tf.shape(gx)[0], -1))
    jacobian = tape.batch_jacobian(flat_gx, x)
    jacobian = tf.reshape(jacobian, (tf.shape(flat_gx)[0], tf.shape(flat_gx)[1], -1))
    eye = tf.eye(tf.shape(jacobian)[-1], dtype=jacobian.dtype)
    _, logabsdet = tf.linalg.slogdet(eye + jacobian)
    return gx, logabsdet


def power_series_logdet_from_jacobian(jacobian: tf.Tensor, n_terms: int) -> tf.Tensor:
    """Series (1) cut after n_terms, with exact traces of the matrix powers (a reference).

    Args:
        jacobian: [..., D, D] matrices J with ||J||_2 < 1.
        n_terms: number of terms n.

    Returns:
        [...] sum_{k=1..n} (-1)^(k+1) tr(J^k) / k.
    """
    jacobian = tf.convert_to_tensor(jacobian)
    power = jacobian
    total = tf.zeros(tf.shape(jacobian)[:-2], jacobian.dtype)
    for k in range(1, n_terms + 1):
        if k > 1:
            power = tf.matmul(power, jacobian)
        total += ((-1.0) ** (k + 1) / k) * tf.linalg.trace(power)
    return total


def truncation_error_bound(lipschitz: float, dim: int, n_terms: int) -> float:
    """Bound (2) on the error of the n-term series: -D (log(1 - L) + sum_{k<=n} L^k / k).

    Equal to D sum_{k>n} L^k / k, the error for J = -L I, where every term has the same sign.
    """
    if not 0 <= lipschitz < 1:
        raise ValueError(f"lipschitz must be in [0, 1), not {lipschitz}")
    partial_sum = math.fsum(lipschitz**k / k for k in range(1, n_terms + 1))
    return -dim * (math.log1p(-lipschitz) + partial_sum)


def hutchinson_logdet(
    residual: ResidualFn,
    x: tf.Tensor,
    n_terms: int = DEFAULT_SERIES_TERMS,
    n_probes: int = 1,
    probe: ProbeKind = "gaussian",
    generator: tf.random.Generator | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Series (1) cut after n_terms, each trace by Hutchinson's estimator (Behrmann et al. 2019).

    Args:
        residual: g, applied to each row independently.
        x: [B, ...] inputs.
        n_terms: series terms n.
        n_probes: probes per example, averaged.
        probe: "gaussian" or "rademacher".
        generator: source of the probes; TensorFlow's global generator when None.

    Returns:
        (g(x) [B, ...], estimate [B]); its expectation over the probes is the n-term series.
    """
    generator = generator or tf.random.get_global_generator()
    batch = tf.shape(x)[0]
    tiled = _tile_batch(x, n_probes)
    gx, vjp = _residual_and_vjp(residual, tiled)
    v = sample_probes(tf.shape(tiled), tiled.dtype, probe, generator)
    w = v
    total = tf.zeros(tf.shape(tiled)[:1], tiled.dtype)
    for k in range(1, n_terms + 1):
        w = vjp(w)  # w = v^T J^k
        total += ((-1.0) ** (k + 1) / k) * _flat_dot(w, v)
    return gx[:batch], _mean_over_probes(total, n_probes)


def sample_roulette_terms(
    count: int | tf.Tensor, config: LogDetConfig, generator: tf.random.Generator
) -> tf.Tensor:
    """The roulette's random term counts N >= 1 (on top of n_exact_terms): [count] int32.

    Args:
        count: how many independent draws.
        config: the law ("geometric" with geometric_p, or "poisson" with poisson_rate).
        generator: source of the draws.
    """
    if config.distribution == "geometric":
        # Inversion: N = floor(log U / log(1 - p)) + 1 has P(N >= k) = (1 - p)^(k - 1).
        uniform = 1.0 - generator.uniform((count,), dtype=tf.float64)  # in (0, 1]
        draws = tf.floor(tf.math.log(uniform) / math.log1p(-config.geometric_p)) + 1.0
        return tf.cast(draws, tf.int32)
    seed = generator.make_seeds(1)[:, 0]
    poisson = tf.random.stateless_poisson((count,), seed, config.poisson_rate, dtype=tf.int32)
    return 1 + poisson


def roulette_survival(k: tf.Tensor, config: LogDetConfig) -> tf.Tensor:
    """P(the roulette keeps term k) = P(N >= k - n_exact_terms), float64; 1 for k <= n_exact.

    Args:
        k: term index (>= 1), integer tensor of any shape.
        config: the roulette's law.
    """
    j = tf.cast(k, tf.float64) - config.n_exact_terms  # index among the random terms
    if config.distribution == "geometric":
        survival = tf.pow(
            tf.constant(1.0 - config.geometric_p, tf.float64), tf.maximum(j - 1.0, 0.0)
        )
    else:
        # N = 1 + Poisson(rate): P(N >= j) = P(Poisson >= j - 1) = regularised lower gamma.
        rate = tf.constant(config.poisson_rate, tf.float64)
        survival = tf.math.igamma(tf.maximum(j - 1.0, 1.0), rate)
        survival = tf.where(j <= 1.0, tf.ones_like(survival), survival)
    return tf.where(j <= 0.0, tf.ones_like(survival), survival)


def russian_roulette_logdet(
    residual: ResidualFn,
    x: tf.Tensor,
    config: LogDetConfig | None = None,
    generator: tf.random.Generator | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Unbiased estimate of log det(I + J_g(x)) by the Russian roulette (Chen et al. 2019).

    Each example (and probe) draws its own N, keeps terms k <= n_exact_terms + N of (1), and
    divides term k by P(N >= k - n_exact_terms); traces by Hutchinson's estimator. The expectation
    over N and probes is the infinite series, i.e. the exact log-determinant (if `max_terms` is not
    reached).

    Args:
        residual: g, applied to each row independently.
        x: [B, ...] inputs.
        config: n_exact_terms, distribution and its parameter, n_probes, probe, max_terms; the
            defaults of `LogDetConfig` when None.
        generator: source of N and the probes; TensorFlow's global generator when None.

    Returns:
        (g(x) [B, ...], estimate [B]).
    """
    config = config or LogDetConfig(method="roulette")
    generator = generator or tf.random.get_global_generator()
    batch = tf.shape(x)[0]
    tiled = _tile_batch(x, config.n_probes)
    rows = tf.shape(tiled)[0]
    gx, vjp = _residual_and_vjp(residual, tiled)
    v = sample_probes(tf.shape(tiled), tiled.dtype, config.probe, generator)
    row_terms = config.n_exact_terms + sample_roulette_terms(rows, config, generator)
    if config.max_terms is not None:
        row_terms = tf.minimum(row_terms, config.max_terms)
    last_term = tf.reduce_max(row_terms)

    def body(k: tf.Tensor, w: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, ...]:
        w = vjp(w)  # w = v^T J^k
        sign = 1.0 - 2.0 * tf.cast(tf.math.floormod(k + 1, 2), tf.float64)  # (-1)^(k+1)
        weight = sign / (tf.cast(k, tf.float64) * roulette_survival(k, config))
        kept = tf.cast(k <= row_terms, tf.float64)
        total += tf.cast(weight * kept, tiled.dtype) * _flat_dot(w, v)
        return k + 1, w, total

    _, _, total = tf.while_loop(
        lambda k, w, total: k <= last_term,
        body,
        (tf.constant(1), v, tf.zeros((rows,), tiled.dtype)),
    )
    return gx[:batch], _mean_over_probes(total, config.n_probes)


def neumann_gradient_logdet(
    residual: ResidualFn,
    x: tf.Tensor,
    config: LogDetConfig,
    generator: tf.random.Generator | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """The "series" or "roulette" estimate of (1), differentiated by the Neumann series (3).

    The value is what `hutchinson_logdet` / `russian_roulette_logdet` compute for the same probes
    and term counts. The terms are accumulated inside a `tf.custom_gradient` forward pass, which no
    enclosing tape records; the gradient (in x and in the weights g reads) is then that of the
    surrogate <u^T J_g(x), v>, where u = sum_k (-1)^k c_k v^T J^k holds the Neumann terms with the
    weights c_k of (1)'s terms: one vector-Jacobian product, differentiated once more.

    Args:
        residual: g, applied to each row independently.
        x: [B, ...] inputs.
        config: method "series" (n_terms) or "roulette", with n_probes and probe.
        generator: source of the probes (and roulette lengths).

    Returns:
        (g(x) [B, ...], estimate [B]).
    """
    if config.method not in ("series", "roulette"):
        raise ValueError(f"the Neumann gradient is for series or roulette, not {config.method!r}")
    generator = generator or tf.random.get_global_generator()
    batch = tf.shape(x)[0]
    tiled = _tile_batch(x, config.n_probes)
    rows = tf.shape(tiled)[0]
    gx = residual(tiled)
    v = sample_probes(tf.shape(tiled), tiled.dtype, config.probe, generator)
    if config.method == "series":
        row_terms = tf.fill((rows,), config.n_terms)
    else:
        row_terms = config.n_exact_terms + sample_roulette_terms(rows, config, generator)
        if config.max_terms is not None:
            row_terms = tf.minimum(row_terms, config.max_terms)
    last_term = tf.reduce_max(row_terms)

    def term_weight(k: tf.Tensor) -> tf.Tensor:
        """[rows] 1 / P(term k is kept), or 0 where the row stops before k (float64)."""
        kept = tf.cast(k <= row_terms, tf.float64)
        if config.method == "series":
            return kept
        return kept / roulette_survival(k, config)

    @tf.custom_gradient
    def logdet(inputs: tf.Tensor) -> Any:
        _, vjp = _residual_and_vjp(residual, inputs)

        def body(
            k: tf.Tensor, w: tf.Tensor, total: tf.Tensor, neumann: tf.Tensor
        ) -> tuple[tf.Tensor, ...]:
            # w = v^T J^(k-1) here: Neumann term k-1 and series term k share weight c_k.
            weight = term_weight(k)
            sign = 1.0 - 2.0 * tf.cast(tf.math.floormod(k + 1, 2), tf.float64)  # (-1)^(k+1)
            neumann += tf.cast(sign * weight, w.dtype)[:, None] * w
            w = vjp(w)
            total += tf.cast(sign * weight / tf.cast(k, tf.float64), w.dtype) * _flat_dot(w, v)
            return k + 1, w, total, neumann

        flat_v = tf.reshape(v, (rows, -1))
        _, _, total, neumann = tf.while_loop(
            lambda k, *_: k <= last_term,
            body,
            (tf.constant(1), v, tf.zeros((rows,), inputs.dtype), tf.zeros_like(flat_v)),
        )
        neumann = tf.reshape(neumann, tf.shape(v))

        def grad(upstream: tf.Tensor, variables: Any = None) -> Any:
            variables = list(variables or [])
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                _, vjp_again = _residual_and_vjp(residual, inputs)
                surrogate = upstream * _flat_dot(vjp_again(neumann), v)  # u^T J v, per row
            grads = tape.gradient(surrogate, [inputs, *variables])
            return grads[0], grads[1:]

        return total, grad

    return gx[:batch], _mean_over_probes(logdet(tiled), config.n_probes)


def residual_logdet(
    residual: ResidualFn,
    x: tf.Tensor,
    config: LogDetConfig,
    generator: tf.random.Generator | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """(g(x), log det(I + J_g(x))) by the method `config` names."""
    if config.method == "exact":
        return exact_logdet(residual, x)
    if config.neumann_gradient:
        return neumann_gradient_logdet(residual, x, config, generator)
    if config.method == "series":
        return hutchinson_logdet(
            residual, x, config.n_terms, config.n_probes, config.probe, generator
        )
    return russian_roulette_logdet(residual, x, config, generator)
