"""JoSE losses, Riemannian steps and the vectorised minibatch update."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.jose.jose_model import (
    FoldInConfig,
    JoseConfig,
    JoseModel,
    average_embedding,
    fold_in_embedding,
    fold_in_negative_table,
    hinge_steps,
    learning_rate_at,
    project_to_tangent,
    random_unit_rows,
)
from models.jose.pairs import (
    UnigramTable,
    concatenate_tuples,
    keep_probabilities,
    make_training_tuples,
    pack_chunks,
)

MARGIN = 0.15


def _unit(rng, *shape):
    x = rng.standard_normal(shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _triplets(rng, p=6, k=3, d=5):
    word, anchor, negative = _unit(rng, p, d), _unit(rng, p, d), _unit(rng, p, k, d)
    # make some terms violate the margin and some not
    anchor[: p // 2] = _unit(rng, p // 2, d) * 0.1 + word[: p // 2]
    anchor /= np.linalg.norm(anchor, axis=-1, keepdims=True)
    return word, anchor, negative


def test_riemannian_gradient_matches_autodiff_of_normalised_parameters():
    """grad on the sphere = gradient of theta -> loss(theta / |theta|) at a unit theta."""
    rng = np.random.default_rng(0)
    word, anchor, negative = (tf.constant(x) for x in _triplets(rng))
    out = hinge_steps(word, anchor, negative, MARGIN)
    assert 0 < float(tf.reduce_mean(out.active)) < 1  # both branches of the hinge are exercised

    thetas = [tf.Variable(word), tf.Variable(anchor), tf.Variable(negative)]
    with tf.GradientTape() as tape:
        u, v, n = (tf.math.l2_normalize(t, axis=-1) for t in thetas)
        f = tf.reduce_sum(u * v, -1)
        h = tf.reduce_sum(n * v[:, None, :], -1)
        loss = tf.reduce_sum(tf.nn.relu(MARGIN - f[:, None] + h))
    g_word, g_anchor, g_negative = tape.gradient(loss, thetas)
    np.testing.assert_allclose(out.grad_word, g_word, atol=1e-10)
    np.testing.assert_allclose(out.grad_anchor, g_anchor, atol=1e-10)
    np.testing.assert_allclose(out.grad_negative, g_negative, atol=1e-10)
    np.testing.assert_allclose(tf.reduce_sum(out.loss), loss, rtol=1e-12)


@pytest.mark.parametrize("rule", ["c_code", "paper"])
def test_steps_lie_in_the_tangent_space(rule):
    rng = np.random.default_rng(1)
    word, anchor, negative = (tf.constant(x) for x in _triplets(rng))
    out = hinge_steps(word, anchor, negative, MARGIN, step_rule=rule)
    np.testing.assert_allclose(tf.reduce_sum(out.step_word * word, -1), 0, atol=1e-12)
    np.testing.assert_allclose(tf.reduce_sum(out.step_anchor * anchor, -1), 0, atol=1e-12)
    np.testing.assert_allclose(tf.reduce_sum(out.step_negative * negative, -1), 0, atol=1e-12)
    g = tf.constant(rng.standard_normal(word.shape))
    np.testing.assert_allclose(tf.reduce_sum(project_to_tangent(word, g) * word, -1), 0, atol=1e-12)


def test_c_code_rule_matches_a_transcription_of_jose_c_for_one_triplet():
    """One positive, one negative: the update of src/jose.c written out per vector."""
    rng = np.random.default_rng(2)
    u, v, n = _unit(rng, 4), _unit(rng, 4), _unit(rng, 4)
    v = (u + 0.2 * v) / np.linalg.norm(u + 0.2 * v)
    n = (v * 0.9 + 0.1 * n) / np.linalg.norm(v * 0.9 + 0.1 * n)  # a negative close to v: active
    f, h = u @ v, n @ v
    assert f - h < MARGIN
    alpha = 0.04
    u_new = u + alpha * (1 - f) * (v - f * u)
    n_new = n + alpha * 2 * h * (h * n - v)
    v_new = v + alpha * (1 - (f - h)) * ((u - f * v) + (h * v - n))
    out = hinge_steps(*(tf.constant(x) for x in (u[None], v[None], n[None, None])), MARGIN)
    np.testing.assert_allclose(u + alpha * out.step_word[0], u_new, atol=1e-12)
    np.testing.assert_allclose(n + alpha * out.step_negative[0, 0], n_new, atol=1e-12)
    np.testing.assert_allclose(v + alpha * out.step_anchor[0], v_new, atol=1e-12)


def test_invalid_terms_contribute_nothing():
    rng = np.random.default_rng(3)
    word, anchor, negative = (tf.constant(x) for x in _triplets(rng, p=4, k=2))
    valid = tf.constant([[True, False]] * 4)
    masked = hinge_steps(word, anchor, negative, 2.0, valid=valid)  # margin 2: all violated
    alone = hinge_steps(word, anchor, negative[:, :1], 2.0)
    np.testing.assert_allclose(masked.step_word, alone.step_word, atol=1e-12)
    np.testing.assert_allclose(masked.step_anchor, alone.step_anchor, atol=1e-12)
    assert np.all(masked.step_negative[:, 1].numpy() == 0)


def _small_config(**kw):
    base = dict(dim=6, window=2, negative=2, wc_chunk=48, wd_chunk=16, sample=0.0)
    base.update(kw)
    return JoseConfig(**base)


@pytest.mark.parametrize("jit", [False, True])
def test_train_step_sums_steps_per_row_and_retracts_once(jit):
    """The vectorised step equals: evaluate all tuples at the old tables, sum per row, retract."""
    cfg = _small_config(jit_compile=jit)
    model = JoseModel(vocab_size=7, num_docs=3, config=cfg, seed=0)
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 7, size=n).astype(np.int32) for n in (5, 4, 3)]
    table = UnigramTable(np.r_[0, np.ones(6)], table_size=600)
    tuples = make_training_tuples(docs, [0, 1, 2], np.ones(7), table, rng, cfg.window, 2)
    batch = pack_chunks(tuples, cfg.wc_chunk, cfg.wd_chunk, model.pad_doc)
    assert batch.num_chunks == 1  # one chunk, so the reference is one simultaneous update
    old = {n: getattr(model, n).numpy().astype(np.float64) for n in ("word", "context", "doc")}
    lr = 0.3

    def steps(anchor_table, word_ids, anchor_ids, neg_ids):
        out = hinge_steps(
            tf.constant(old["word"][word_ids]),
            tf.constant(old[anchor_table][anchor_ids]),
            tf.constant(old["word"][neg_ids]),
            cfg.margin,
            valid=tf.constant(neg_ids != word_ids[:, None]),
        )
        return out

    wc = steps("context", tuples.wc_word, tuples.wc_context, tuples.wc_negative)
    wd = steps("doc", tuples.wd_word, tuples.wd_doc, tuples.wd_negative)
    delta = {n: np.zeros_like(v) for n, v in old.items()}
    np.add.at(delta["word"], tuples.wc_word, wc.step_word.numpy())
    np.add.at(delta["word"], tuples.wc_negative, wc.step_negative.numpy())
    np.add.at(delta["word"], tuples.wd_word, wd.step_word.numpy())
    np.add.at(delta["word"], tuples.wd_negative, wd.step_negative.numpy())
    np.add.at(delta["context"], tuples.wc_context, wc.step_anchor.numpy())
    np.add.at(delta["doc"], tuples.wd_doc, wd.step_anchor.numpy())

    out = model.train_step(
        batch.wc_word,
        batch.wc_context,
        batch.wc_negative,
        batch.wd_word,
        batch.wd_doc,
        batch.wd_negative,
        np.array([lr], np.float32),
    )
    np.testing.assert_allclose(out["wc_loss"], np.sum(wc.loss), rtol=1e-4)
    for name in ("word", "context", "doc"):
        new = getattr(model, name).numpy()
        expected = old[name] + lr * delta[name]
        expected /= np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(new, expected, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(np.linalg.norm(new, axis=1), 1.0, atol=1e-5)


def test_learning_rate_decays_linearly_to_a_floor():
    cfg = JoseConfig(learning_rate=0.04, min_learning_rate_ratio=1e-4)
    assert learning_rate_at(cfg, 0, 1000) == pytest.approx(0.04, rel=1e-3)
    assert learning_rate_at(cfg, 500, 1000) == pytest.approx(0.02, rel=1e-2)
    assert learning_rate_at(cfg, 999, 1000) == pytest.approx(0.04 * 2 / 1001)
    assert learning_rate_at(cfg, 2000, 1000) == pytest.approx(0.04 * 1e-4)


def _planted_corpus(rng, topics=3, words_per_topic=12, common=6, docs_per_topic=20, length=25):
    """Documents of 80% words of their own topic and 20% words shared by all topics."""
    docs, labels = [], []
    common_ids = np.arange(1, common + 1)
    for t in range(topics):
        own = common + 1 + t * words_per_topic + np.arange(words_per_topic)
        for _ in range(docs_per_topic):
            pick = rng.random(length) < 0.8
            doc = np.where(pick, rng.choice(own, length), rng.choice(common_ids, length))
            docs.append(doc.astype(np.int32))
            labels.append(t)
    vocab_size = common + 1 + topics * words_per_topic
    return docs, np.array(labels), vocab_size


def _assert_topics_separate(vectors, labels):
    """Same-topic documents are closer on average, and each one's nearest neighbour shares it."""
    sim = vectors @ vectors.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    assert sim[same & off].mean() > sim[~same].mean() + 0.05
    np.fill_diagonal(sim, -np.inf)
    assert np.mean(labels[sim.argmax(1)] == labels) >= 0.95


@pytest.mark.parametrize("rule", ["c_code", "paper"])
def test_loss_falls_and_planted_topics_separate(rule):
    rng = np.random.default_rng(0)
    docs, labels, vocab_size = _planted_corpus(rng)
    counts = np.bincount(np.concatenate(docs), minlength=vocab_size)
    cfg = JoseConfig(
        dim=16, window=3, negative=3, sample=0.0, learning_rate=0.04, wc_chunk=256,
        wd_chunk=64, step_rule=rule,
    )  # fmt: skip
    model = JoseModel(vocab_size, len(docs), cfg, seed=1)
    table = UnigramTable(counts, table_size=10_000)
    keep = keep_probabilities(counts, cfg.sample)
    epochs, losses = 15, []
    total = epochs * sum(len(d) for d in docs)
    done = 0
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(len(docs))
        parts = [
            make_training_tuples(
                [docs[i] for i in order[s : s + 10]], order[s : s + 10], keep, table,
                np.random.default_rng([epoch, s]), cfg.window, cfg.negative,
            )
            for s in range(0, len(docs), 10)
        ]  # fmt: skip
        batch = pack_chunks(concatenate_tuples(parts), cfg.wc_chunk, cfg.wd_chunk, model.pad_doc)
        lrs = np.full(batch.num_chunks, learning_rate_at(cfg, done, total), np.float32)
        out = model.train_step(
            batch.wc_word, batch.wc_context, batch.wc_negative,
            batch.wd_word, batch.wd_doc, batch.wd_negative, lrs,
        )  # fmt: skip
        done += batch.num_words
        losses.append(float(out["wc_loss"] / out["wc_terms"] + out["wd_loss"] / out["wd_terms"]))
    assert losses[-1] < 0.6 * losses[0], losses

    tables = [model.word.numpy(), model.context.numpy(), model.doc.numpy()]
    for t in tables:
        np.testing.assert_allclose(np.linalg.norm(t[1:], axis=1), 1.0, atol=1e-5)

    _assert_topics_separate(model.doc.numpy()[: len(docs)], labels)

    # unseen documents of the same topics, embedded by fold-in and by averaging
    new_docs, new_labels, _ = _planted_corpus(np.random.default_rng(7), docs_per_topic=5)
    ids = tf.constant(np.stack(new_docs))
    word = tf.constant(tables[0])
    fold_cfg = FoldInConfig(steps=20, negative=3)
    negatives = tf.constant(fold_in_negative_table(counts, vocab_size, fold_cfg))
    for vectors in (
        fold_in_embedding(word, ids, negatives, fold_cfg).numpy(),
        average_embedding(word, ids).numpy(),
    ):
        _assert_topics_separate(vectors, new_labels)


def test_fold_in_lowers_the_word_document_hinge_of_its_start():
    rng = np.random.default_rng(4)
    vocab_size, dim = 30, 8
    word = random_unit_rows(vocab_size, dim, rng)
    word[0] = 0
    ids = tf.constant(rng.integers(1, vocab_size, size=(4, 12)).astype(np.int32))
    cfg = FoldInConfig(steps=40, negative=4, negative_positions=16)
    negatives = fold_in_negative_table(np.r_[0, np.ones(vocab_size - 1)], vocab_size, cfg)

    def hinge(d):
        u = word[ids.numpy()]  # [B, T, D]
        pos = np.arange(ids.shape[1]) % negatives.shape[0]
        neg = word[negatives[pos]]  # [T, S, K, D]
        f = np.einsum("btd,bd->bt", u, d)
        h = np.einsum("tskd,bd->btsk", neg, d)
        return np.maximum(0, cfg.margin - f[:, :, None, None] + h).mean()

    start = average_embedding(tf.constant(word), ids).numpy()
    folded = fold_in_embedding(tf.constant(word), ids, tf.constant(negatives), cfg).numpy()
    np.testing.assert_allclose(np.linalg.norm(folded, axis=1), 1.0, atol=1e-5)
    assert hinge(folded) < 0.9 * hinge(start)


@pytest.mark.parametrize("rule", ["c_code", "paper"])
def test_one_fold_in_step_matches_a_per_term_reference(rule):
    rng = np.random.default_rng(5)
    vocab_size, dim = 12, 6
    word = random_unit_rows(vocab_size, dim, rng).astype(np.float64)
    word[0] = 0
    ids = np.array([[3, 5, 5, 9, 0, 0], [1, 2, 0, 0, 0, 0]], np.int32)
    cfg = FoldInConfig(steps=1, learning_rate=0.7, negative=3, margin=0.5, step_rule=rule,
                       negative_positions=4)  # fmt: skip
    negatives = fold_in_negative_table(np.r_[0, np.ones(vocab_size - 1)], vocab_size, cfg)
    got = fold_in_embedding(tf.constant(word), tf.constant(ids), tf.constant(negatives), cfg)

    for b, row in enumerate(ids):
        d = word[row[row > 0]].sum(0)
        d /= np.linalg.norm(d)
        step, terms = np.zeros(dim), 0
        for t, w in enumerate(row[row > 0]):
            u = word[w]
            for n_id in negatives[t % 4, 0]:
                if n_id == w:
                    continue
                terms += 1
                n = word[n_id]
                f, h = u @ d, n @ d
                if cfg.margin - f + h <= 0:
                    continue
                if rule == "paper":
                    factor = 1 - (f - h) / np.linalg.norm(n - u)
                else:
                    factor = 1 - (f - h)
                step += factor * ((u - f * d) - (n - h * d))
        expected = d + cfg.learning_rate * step / max(terms, 1)
        np.testing.assert_allclose(got[b], expected / np.linalg.norm(expected), atol=1e-9)
