"""JoSE: joint spherical embedding of words, contexts and documents (Meng et al., NeurIPS 2019).

Three tables of unit vectors: words u (the C code's `syn0`), contexts v (`syn1neg`) and documents
d (`syn1doc`). Two max-margin losses, as in the authors' C code (yumeng5/Spherical-Text-Embedding,
src/jose.c), which splits the paper's single joint loss (paper Eq. 4) into two hinges:

    word-context:   l_wc = max(0, m - cos(u_w, v_c) + cos(u_w', v_c))
    word-document:  l_wd = max(0, m - cos(u_w, d)   + cos(u_w', d))

with w' a negative word drawn from the unigram^0.75 table and m the margin (0.15).

Optimisation is Riemannian SGD on the unit sphere (paper Sec. 4.3): the Euclidean gradient g of
each term is projected onto the tangent space at x, (I - x x^T) g, scaled by a per-term factor,
and the step x + lr * step is retracted onto the sphere by normalising (paper Eq. 6, the
retraction R_x(z) = (x + z) / |x + z|). The learning rate decays linearly to 1e-4 of its start.

Step factors (`step_rule`):

* "c_code" (default, what the released C code does and what its published numbers used):
  positive word (1 - cos(u_w, v)), negative word 2 cos(u_w', v), context or document
  (1 - (cos(u_w, v) - cos(u_w', v))). The 2 cos factor pushes a negative towards orthogonality
  (it is pulled back when the cosine is already negative) rather than to the antipode.
* "paper": the paper's modified Riemannian gradient, factor 1 + x^T g / |g| (one minus the cosine
  between x and the descent direction -g) for every vector: 1 - cos(u_w, v) for the positive word,
  1 + cos(u_w', v) for the negative, 1 + (cos(u_w', v) - cos(u_w, v)) / |u_w' - u_w| for v or d.

Minibatches: every tuple of a batch is evaluated at the same (old) parameters and the steps
of each row are summed before one retraction per touched row. The C code applies them one after
the other (Hogwild); summing is what makes the update a handful of vectorised TensorFlow ops.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import tensorflow as tf

StepRule = Literal["c_code", "paper"]


@dataclass
class JoseConfig:
    """Hyper-parameters of JoSE training; defaults are the C code's (src/jose.c, run.sh).

    Attributes:
        dim: dimension of the sphere's ambient space (`-size 100`).
        window: maximal window radius; each centre draws its radius in 1..window (`-window 5`).
        negative: negatives per positive tuple (`-negative 2`).
        margin: hinge margin m (`-margin 0.15`).
        learning_rate: starting learning rate (`-alpha 0.04`).
        min_learning_rate_ratio: floor of the linear decay, as a fraction of the start (1e-4).
        sample: subsampling threshold for frequent words (`-sample 1e-3`).
        min_count: words rarer than this are dropped from the vocabulary (`-min-count`, 5 in
            the C code; 2 here, matching the speed/quality reference run on a small corpus).
        step_rule: "c_code" or "paper" step factors (module docstring).
        wc_chunk: word-context tuples per minibatch step (P); about 5 per word read with the
            default window and subsampling, so 2048 is a minibatch of ~400 words.
        wd_chunk: word-document tuples per minibatch step (Q, ~1 per kept word).
        jit_compile: compile the minibatch step with XLA (much faster on CPU).
    """

    dim: int = 100
    window: int = 5
    negative: int = 2
    margin: float = 0.15
    learning_rate: float = 0.04
    min_learning_rate_ratio: float = 1e-4
    sample: float = 1e-3
    min_count: int = 2
    step_rule: StepRule = "c_code"
    wc_chunk: int = 2048
    wd_chunk: int = 512
    jit_compile: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> JoseConfig:
        return cls(**{k: v for k, v in config.items() if k in cls.__dataclass_fields__})


@dataclass
class FoldInConfig:
    """How an unseen document gets its vector: optimise d on the word-document hinge, words fixed.

    Attributes:
        steps: Riemannian SGD steps per document.
        learning_rate: starting learning rate; decays linearly to 0 over the steps. The step is
            the mean over (word, negative) terms, so this is independent of the text's length.
        negative: negatives per word position.
        margin: hinge margin (the training margin).
        step_rule: step factors, as in training.
        seed: seed of the fixed negative draws.
        negative_positions: negatives are drawn once, for this many positions x steps x
            negatives, and position t uses row t mod this; so a text's vector depends only on
            the text (not on the batch, its row or the padding).
    """

    steps: int = 30
    learning_rate: float = 1.0
    negative: int = 5
    margin: float = 0.15
    step_rule: StepRule = "c_code"
    seed: int = 1234
    negative_positions: int = 128

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> FoldInConfig:
        return cls(**{k: v for k, v in config.items() if k in cls.__dataclass_fields__})


def _dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    # Elementwise product then a row reduction (not matmul), so a row's value does not depend
    # on the batch it is computed in.
    return tf.reduce_sum(a * b, axis=-1)


def project_to_tangent(x: tf.Tensor, g: tf.Tensor) -> tf.Tensor:
    """(I - x x^T) g for unit rows x: the Riemannian gradient of g on the sphere (paper Eq. 5)."""
    return g - _dot(x, g)[..., None] * x


def retract(x: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """R_x(z) = (x + z) / |x + z|: back onto the sphere after a tangent step."""
    return tf.math.l2_normalize(x + step, axis=-1)


@dataclass
class HingeSteps:
    """Per-tuple result of the hinge l = max(0, m - <u, v> + <u', v>) (u = word, v = anchor).

    loss: [P, K]; active: [P, K] float mask of violated, valid terms; grad_*: Riemannian
    gradients of sum(loss) (tangent at u, v, u'); step_*: descent steps with the rule's factors.
    """

    loss: tf.Tensor
    active: tf.Tensor
    grad_word: tf.Tensor
    grad_anchor: tf.Tensor
    grad_negative: tf.Tensor
    step_word: tf.Tensor
    step_anchor: tf.Tensor
    step_negative: tf.Tensor


def hinge_steps(
    word: tf.Tensor,
    anchor: tf.Tensor,
    negative: tf.Tensor,
    margin: float,
    valid: tf.Tensor | None = None,
    step_rule: StepRule = "c_code",
) -> HingeSteps:
    """Hand-written loss, Riemannian gradients and steps of the JoSE hinge, vectorised.

    Args:
        word: [P, D] unit vectors u_w of the positive words.
        anchor: [P, D] unit vectors the words are scored against (context v_c or document d).
        negative: [P, K, D] unit vectors u_w' of the negative words.
        margin: hinge margin m.
        valid: optional [P, K] bool mask (the C code skips a negative equal to the positive).
        step_rule: "c_code" or "paper" factors (module docstring).
    """
    f = _dot(word, anchor)  # [P] cos(u_w, v)
    h = _dot(negative, anchor[:, None, :])  # [P, K] cos(u_w', v)
    slack = margin - f[:, None] + h
    active = tf.cast(slack > 0, word.dtype)
    if valid is not None:
        active *= tf.cast(valid, word.dtype)
    loss = slack * active

    # Euclidean gradients of each term: d/du = -v, d/dv = u' - u, d/du' = v. Their tangent
    # parts are formed with [P, K] weights so that only u' and its step are [P, K, D].
    tangent_word = anchor - f[:, None] * word  # -(I - uu^T) d/du
    tangent_negative = anchor[:, None, :] - h[..., None] * negative  # (I - u'u'^T) d/du'

    def anchor_descent(weight: tf.Tensor) -> tf.Tensor:
        # sum_k weight_k * [(u - f v) - (u'_k - h_k v)] = -(I - vv^T) sum_k weight_k d/dv
        total = tf.reduce_sum(weight, axis=1)
        return (
            total[:, None] * (word - f[:, None] * anchor)
            - tf.einsum("pk,pkd->pd", weight, negative)
            + tf.reduce_sum(weight * h, axis=1)[:, None] * anchor
        )

    n_active = tf.reduce_sum(active, axis=1)
    grad_word = -n_active[:, None] * tangent_word
    grad_negative = active[..., None] * tangent_negative
    grad_anchor = -anchor_descent(active)

    fh = f[:, None] - h
    if step_rule == "c_code":
        factor_word = 1.0 - f
        factor_negative = -2.0 * h
        factor_anchor = 1.0 - fh
    elif step_rule == "paper":
        factor_word = 1.0 - f
        factor_negative = 1.0 + h
        dist = tf.sqrt(tf.maximum(2.0 - 2.0 * _dot(negative, word[:, None, :]), 1e-12))
        factor_anchor = 1.0 - fh / dist
    else:
        raise ValueError(f"unknown step_rule {step_rule!r}")
    step_word = (n_active * factor_word)[:, None] * tangent_word
    step_negative = (active * factor_negative)[..., None] * tangent_negative
    step_anchor = anchor_descent(active * factor_anchor)
    return HingeSteps(
        loss, active, grad_word, grad_anchor, grad_negative, step_word, step_anchor, step_negative
    )


def random_unit_rows(rows: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random points on the sphere (the C code draws a cube and normalises)."""
    x = rng.standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class JoseModel(tf.Module):
    """The three JoSE tables and a vectorised Riemannian SGD step.

    Args:
        vocab_size: rows of the word and context tables (id 0 = padding, never trained).
        num_docs: number of training documents; the document table has one more row,
            `pad_doc`, that padding tuples point at.
        config: training hyper-parameters.
        seed: seed of the random initialisation.

    Example:
        >>> model = JoseModel(vocab_size=10, num_docs=3, config=JoseConfig(dim=4))
        >>> model.word.shape, model.doc.shape
        (TensorShape([10, 4]), TensorShape([4, 4]))
    """

    def __init__(self, vocab_size: int, num_docs: int, config: JoseConfig, seed: int = 0) -> None:
        super().__init__(name="jose")
        self.config = config
        self.pad_doc = num_docs
        rng = np.random.default_rng(seed)
        self.word = tf.Variable(random_unit_rows(vocab_size, config.dim, rng), name="word")
        self.context = tf.Variable(random_unit_rows(vocab_size, config.dim, rng), name="context")
        self.doc = tf.Variable(random_unit_rows(num_docs + 1, config.dim, rng), name="doc")
        p, q, k = config.wc_chunk, config.wd_chunk, config.negative
        # One chunk has static shapes, so XLA compiles its step once and fuses the hinge
        # arithmetic; that is what makes a minibatch of a few hundred words cheap on a CPU.
        self._chunk_step = tf.function(
            self._step,
            input_signature=[
                tf.TensorSpec([p], tf.int32),
                tf.TensorSpec([p], tf.int32),
                tf.TensorSpec([p, k], tf.int32),
                tf.TensorSpec([q], tf.int32),
                tf.TensorSpec([q], tf.int32),
                tf.TensorSpec([q, k], tf.int32),
                tf.TensorSpec([], tf.float32),
            ],
            jit_compile=config.jit_compile,
        )
        self.train_step = tf.function(
            self._train_chunks,
            input_signature=[
                tf.TensorSpec([None, p], tf.int32),
                tf.TensorSpec([None, p], tf.int32),
                tf.TensorSpec([None, p, k], tf.int32),
                tf.TensorSpec([None, q], tf.int32),
                tf.TensorSpec([None, q], tf.int32),
                tf.TensorSpec([None, q, k], tf.int32),
                tf.TensorSpec([None], tf.float32),
            ],
        )

    @staticmethod
    def _apply_sparse(
        table: tf.Variable, ids: tf.Tensor, steps: tf.Tensor, lr: tf.Tensor, pad_row: int
    ) -> None:
        """Sums the steps of each touched row, then steps and retracts each row once.

        Duplicates are merged by sorting (tf.unique has a dynamic output shape, which XLA
        cannot compile): the sorted ids are numbered by run, steps summed per run, and the
        unused run slots point at `pad_row` with a zero step, so they rewrite that row's own
        (normalised) value.
        """
        n = tf.shape(ids)[0]
        order = tf.argsort(ids, stable=True)
        sorted_ids = tf.gather(ids, order)
        starts = tf.concat([[1], tf.cast(sorted_ids[1:] != sorted_ids[:-1], tf.int32)], 0)
        run = tf.cumsum(starts) - 1
        summed = tf.math.unsorted_segment_sum(tf.gather(steps, order), run, n)
        rows = tf.tensor_scatter_nd_update(tf.fill([n], pad_row), run[:, None], sorted_ids)
        table.scatter_update(tf.IndexedSlices(retract(tf.gather(table, rows), lr * summed), rows))

    def _step(
        self,
        wc_word: tf.Tensor,
        wc_context: tf.Tensor,
        wc_negative: tf.Tensor,
        wd_word: tf.Tensor,
        wd_doc: tf.Tensor,
        wd_negative: tf.Tensor,
        lr: tf.Tensor,
    ) -> tf.Tensor:
        """One minibatch step on both hinges; returns [wc loss, wc terms, wd loss, wd terms].

        Tuples whose word id is 0 are padding and count for nothing.
        """
        cfg = self.config
        wc_valid = tf.not_equal(wc_negative, wc_word[:, None]) & (wc_word[:, None] > 0)
        wd_valid = tf.not_equal(wd_negative, wd_word[:, None]) & (wd_word[:, None] > 0)
        wc = hinge_steps(
            tf.gather(self.word, wc_word),
            tf.gather(self.context, wc_context),
            tf.gather(self.word, wc_negative),
            cfg.margin,
            valid=wc_valid,
            step_rule=cfg.step_rule,
        )
        wd = hinge_steps(
            tf.gather(self.word, wd_word),
            tf.gather(self.doc, wd_doc),
            tf.gather(self.word, wd_negative),
            cfg.margin,
            valid=wd_valid,
            step_rule=cfg.step_rule,
        )
        dim = cfg.dim
        word_ids = tf.concat(
            [wc_word, tf.reshape(wc_negative, [-1]), wd_word, tf.reshape(wd_negative, [-1])], 0
        )
        word_steps = tf.concat(
            [
                wc.step_word,
                tf.reshape(wc.step_negative, [-1, dim]),
                wd.step_word,
                tf.reshape(wd.step_negative, [-1, dim]),
            ],
            0,
        )
        # All steps are computed at the old parameters before any table changes.
        self._apply_sparse(self.word, word_ids, word_steps, lr, 0)
        self._apply_sparse(self.context, wc_context, wc.step_anchor, lr, 0)
        self._apply_sparse(self.doc, wd_doc, wd.step_anchor, lr, self.pad_doc)
        return tf.stack(
            [
                tf.reduce_sum(wc.loss),
                tf.reduce_sum(tf.cast(wc_valid, tf.float32)),
                tf.reduce_sum(wd.loss),
                tf.reduce_sum(tf.cast(wd_valid, tf.float32)),
            ]
        )

    def _train_chunks(
        self,
        wc_word: tf.Tensor,
        wc_context: tf.Tensor,
        wc_negative: tf.Tensor,
        wd_word: tf.Tensor,
        wd_doc: tf.Tensor,
        wd_negative: tf.Tensor,
        learning_rates: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """Steps through the chunks of a `ChunkedBatch` one after the other, in one graph.

        Args:
            wc_word, wc_context, wc_negative, wd_word, wd_doc, wd_negative: chunked tuples
                ([C, P], [C, P, K], [C, Q], [C, Q, K]), see `pairs.pack_chunks`.
            learning_rates: [C] the learning rate of each chunk.

        Returns:
            Sums over the chunks of the hinge losses and of the valid terms (wc_loss, wc_terms,
            wd_loss, wd_terms).
        """

        def body(i: tf.Tensor, totals: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            out = self._chunk_step(
                wc_word[i],
                wc_context[i],
                wc_negative[i],
                wd_word[i],
                wd_doc[i],
                wd_negative[i],
                learning_rates[i],
            )
            return i + 1, totals + out

        # parallel_iterations=1: chunk i+1 must read the tables chunk i wrote.
        _, totals = tf.while_loop(
            lambda i, _: i < tf.shape(learning_rates)[0],
            body,
            (tf.constant(0), tf.zeros([4], tf.float32)),
            parallel_iterations=1,
        )
        return {
            "wc_loss": totals[0],
            "wc_terms": totals[1],
            "wd_loss": totals[2],
            "wd_terms": totals[3],
        }


def learning_rate_at(config: JoseConfig, words_done: int, total_words: int) -> float:
    """Linear decay of the C code: alpha0 * (1 - done / (iter * train_words + 1)), floored."""
    frac = 1.0 - words_done / (total_words + 1)
    return config.learning_rate * max(frac, config.min_learning_rate_ratio)


def fold_in_negative_table(
    counts: np.ndarray | list[int] | None, vocab_size: int, config: FoldInConfig
) -> np.ndarray:
    """Fixed negative word ids [negative_positions, steps, negative] for fold-in.

    Drawn once from the unigram^0.75 distribution (uniform over the words when counts are not
    known) with `config.seed`, so fold-in is deterministic.
    """
    if counts is not None and np.sum(counts) > 0:
        w = np.asarray(counts, dtype=np.float64) ** 0.75
    else:
        w = np.ones(vocab_size, dtype=np.float64)
    w[0] = 0.0
    if w.sum() <= 0:  # a vocabulary of only "<pad>": any id works, every row is masked anyway
        return np.zeros((config.negative_positions, config.steps, config.negative), np.int32)
    rng = np.random.default_rng(config.seed)
    shape = (config.negative_positions, config.steps, config.negative)
    return rng.choice(vocab_size, size=shape, p=w / w.sum()).astype(np.int32)


def average_embedding(word_vectors: tf.Tensor, token_ids: tf.Tensor) -> tf.Tensor:
    """Normalised mean of the word vectors of the non-padding ids; zero row for all padding.

    Args:
        word_vectors: [V, D] unit word vectors (row 0 = padding).
        token_ids: [B, T] int32, 0 = padding.
    """
    mask = tf.cast(tf.not_equal(token_ids, 0), word_vectors.dtype)
    summed = tf.reduce_sum(tf.gather(word_vectors, token_ids) * mask[..., None], axis=1)
    # l2_normalize maps a zero row to zero (it clamps the norm), never to NaN.
    return tf.math.l2_normalize(summed, axis=-1)


def fold_in_embedding(
    word_vectors: tf.Tensor,
    token_ids: tf.Tensor,
    negative_table: tf.Tensor,
    config: FoldInConfig,
) -> tf.Tensor:
    """Embeds unseen documents: Riemannian SGD on a new d with the words held fixed.

    Minimises the mean word-document hinge mean_{t,k} max(0, m - <u_t, d> + <u'_{t,k}, d>) over
    d on the sphere, starting from the normalised mean of the word vectors.

    Args:
        word_vectors: [V, D] unit word vectors.
        token_ids: [B, T] int32, 0 = padding.
        negative_table: [L, S, K] negative ids (`fold_in_negative_table`); position t uses row
            t mod L, so negatives depend on the position only.
        config: fold-in settings (steps S, learning rate, margin, step rule).
    """
    ids = tf.convert_to_tensor(token_ids, tf.int32)
    mask = tf.cast(tf.not_equal(ids, 0), word_vectors.dtype)  # [B, T]
    words = tf.gather(word_vectors, ids) * mask[..., None]  # [B, T, D]
    positions = tf.range(tf.shape(ids)[1]) % tf.shape(negative_table)[0]
    negatives = tf.gather(negative_table, positions)  # [T, S, K]
    # [S, B, T, K]: a term counts if its word is real and the negative is not the word itself
    valid = mask[None, :, :, None] * tf.cast(
        tf.not_equal(tf.transpose(negatives, [1, 0, 2])[:, None], ids[None, :, :, None]),
        word_vectors.dtype,
    )
    n_terms = tf.maximum(tf.reduce_sum(valid[0], axis=[1, 2]), 1.0)  # [B]
    neg_all = tf.gather(word_vectors, tf.transpose(negatives, [1, 0, 2]))  # [S, T, K, D]
    d0 = average_embedding(word_vectors, ids)
    steps = config.steps

    def body(s: tf.Tensor, d: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        neg = neg_all[s]  # [T, K, D], the same for every row of the batch
        f = tf.einsum("btd,bd->bt", words, d)
        h = tf.einsum("tkd,bd->btk", neg, d)
        active = tf.cast(config.margin - f[..., None] + h > 0, d.dtype) * valid[s]
        fh = f[..., None] - h
        if config.step_rule == "paper":
            # |u' - u| for unit vectors
            dist = tf.sqrt(tf.maximum(2.0 - 2.0 * tf.einsum("tkd,btd->btk", neg, words), 1e-12))
            weight = active * (1.0 - fh / dist)
        else:
            weight = active * (1.0 - fh)
        # sum_{t,k} weight * [(u_t - f_t d) - (u'_tk - h_tk d)] = -(I - dd^T) (weighted grad),
        # contracted without forming the [B, T, K, D] tangents
        per_word = tf.reduce_sum(weight, axis=2)  # [B, T]
        step = (
            tf.einsum("bt,btd->bd", per_word, words)
            - tf.reduce_sum(per_word * f, axis=1)[:, None] * d
            - tf.einsum("btk,tkd->bd", weight, neg)
            + tf.reduce_sum(weight * h, axis=[1, 2])[:, None] * d
        )
        lr = config.learning_rate * (1.0 - tf.cast(s, d.dtype) / steps)
        return s + 1, retract(d, lr * step / n_terms[:, None])

    _, d = tf.while_loop(lambda s, d: s < steps, body, (tf.constant(0), d0))
    has_tokens = tf.cast(tf.reduce_any(tf.not_equal(ids, 0), axis=1), d.dtype)
    return d * has_tokens[:, None]


__all__ = [
    "FoldInConfig",
    "HingeSteps",
    "JoseConfig",
    "JoseModel",
    "average_embedding",
    "fold_in_embedding",
    "fold_in_negative_table",
    "hinge_steps",
    "learning_rate_at",
    "project_to_tangent",
    "random_unit_rows",
    "retract",
]
