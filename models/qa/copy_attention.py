"""Copy attention: answer tokens written by pointing at the source as well as by the vocabulary
(`training.qa --copy-attention`).

A UniLM reader writes each answer token through the tied MLM head: a softmax over the vocabulary.
To write a value it never saw in training (a user's own dog breed, a year it never read) the head
must put mass on a token its training pushed down, and where the reader cuts such a value short
(柯基犬 -> 柯基) that is why. Copy attention adds a second way to write a token: each answer slot
scores every source position (`[CLS] passage [SEP] question [SEP]`) by a dot product of its state
with the position's, and a position's score is mass on the token it holds. The two share one
softmax, as in CopyNet (Gu et al., "Incorporating Copying Mechanism in Sequence-to-Sequence
Learning", ACL 2016):

    P(t) = (exp(v_t) + sum over source positions j holding t of exp(c_j)) / Z,

v the MLM head's logits, c the copy scores, Z the sum over both. That is the pointer-generator's
mixture (See et al., "Get To The Point", ACL 2017), p_gen P_vocab(t) + (1 - p_gen) sum over j
holding t of a_j with P_vocab = softmax(v) and a = softmax(c), where p_gen is the vocabulary's
share of Z rather than a switch of its own (a sigmoid of the state). The loss is the negative log of
that marginal (no position label is needed: any occurrence of the target may be pointed at), and
decoding reads the same P: `prefill` and `step` return it as log-probabilities over the
vocabulary, so every decoder (voting, beams, the span search, the extractive constraint) and the
service read a copy model as they read any other. What the pointer gives that the vocabulary head
cannot is position: a slot can learn "the token after the one I just wrote" as a match between
its state and a position's, whichever characters the value is made of.

The step needs the source's copy keys and token ids; they ride in the key/value cache as one more
"layer" after the encoder's (`CACHE_LAYERS`): slot j's keys hold position j's copy key, split into
heads like any key; its values hold the token id (as a float: exact below 2**24) in element 0 of
head 0 and 1.0 in element 1 where position j is a source token. So beams, passages leaving and
the SavedModel's signatures carry them with no change.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from models.bert.bert_layers import bert_initializer

# Cache entries the copy attention adds after the encoder's layers.
CACHE_LAYERS = 1
# Scores of positions that are not source (padding, the answer): out of every softmax.
_NEVER = -1e9
# Floor of a merged probability before its log: a token with neither mass is this unlikely
# (float32's smallest normal number), never -inf (decoders add and compare log-probabilities).
_TINY = 1.1754944e-38


@keras.saving.register_keras_serializable(package="kexue_qa")
class CopyAttention(keras.layers.Layer):
    """Scores of answer slots over source positions: (W_q h_slot) . (W_k h_j) / sqrt(H).

    Args:
        hidden_size: H, the encoder's width (queries and keys are H wide too, so the keys split
            into the cache's heads).
    """

    def __init__(self, hidden_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.query = keras.layers.Dense(
            hidden_size, kernel_initializer=bert_initializer(), name="query"
        )
        self.key = keras.layers.Dense(
            hidden_size, kernel_initializer=bert_initializer(), name="key"
        )

    def build(self, input_shape: Any = None) -> None:
        self.query.build((None, self.hidden_size))
        self.key.build((None, self.hidden_size))
        super().build(input_shape)

    def scores(self, slot_states: tf.Tensor, keys: tf.Tensor, source: tf.Tensor) -> tf.Tensor:
        """[B, Q, H] slot states, [B, S, H] copy keys, [B, S] bool source -> [B, Q, S] scores
        (`_NEVER` where not source)."""
        queries = self.query(slot_states)
        scores = tf.einsum("bqh,bsh->bqs", queries, keys) / tf.sqrt(float(self.hidden_size))
        return tf.where(source[:, tf.newaxis, :], scores, _NEVER)

    def call(self, slot_states: tf.Tensor, states: tf.Tensor, source: tf.Tensor) -> tf.Tensor:
        return self.scores(slot_states, self.key(states), source)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "hidden_size": self.hidden_size}


def copy_loss(
    vocab_logits: tf.Tensor,
    copy_scores: tf.Tensor,
    source_ids: tf.Tensor,
    targets: tf.Tensor,
) -> tf.Tensor:
    """-log P(target) under the shared softmax, [B, Q].

    Args:
        vocab_logits: [B, Q, V] the MLM head's logits at the slots.
        copy_scores: [B, Q, S] `CopyAttention.scores` (`_NEVER` off the source).
        source_ids: [B, S] int32 the token at each position.
        targets: [B, Q] int32 the token each slot should write.
    """
    vocab_logits = tf.cast(vocab_logits, tf.float32)
    copy_scores = tf.cast(copy_scores, tf.float32)
    target_logit = tf.gather(vocab_logits, targets, batch_dims=2)[..., tf.newaxis]
    holds_target = tf.equal(source_ids[:, tf.newaxis, :], targets[..., tf.newaxis])
    target_copies = tf.where(holds_target, copy_scores, _NEVER)
    log_target = tf.reduce_logsumexp(tf.concat([target_logit, target_copies], -1), axis=-1)
    log_total = tf.reduce_logsumexp(tf.concat([vocab_logits, copy_scores], -1), axis=-1)
    return log_total - log_target


def merged_log_probs(
    vocab_logits: tf.Tensor, copy_scores: tf.Tensor, source_ids: tf.Tensor
) -> tf.Tensor:
    """log P over the vocabulary under the shared softmax, [B, Q, V].

    Each position's mass goes to its token's entry: a scatter of B * Q * S numbers, no one-hot
    [B, Q, S, V].

    Args:
        vocab_logits: [B, Q, V]; copy_scores: [B, Q, S]; source_ids: [B, S] int32.
    """
    vocab_logits = tf.cast(vocab_logits, tf.float32)
    copy_scores = tf.cast(copy_scores, tf.float32)
    top = tf.maximum(
        tf.reduce_max(vocab_logits, axis=-1, keepdims=True),
        tf.reduce_max(copy_scores, axis=-1, keepdims=True),
    )
    vocab_mass = tf.exp(vocab_logits - top)
    copy_mass = tf.exp(copy_scores - top)
    shape = tf.shape(copy_scores)
    batch, queries, sources = shape[0], shape[1], shape[2]
    grid = [batch, queries, sources]
    rows = tf.broadcast_to(tf.range(batch)[:, tf.newaxis, tf.newaxis], grid)
    slots = tf.broadcast_to(tf.range(queries)[tf.newaxis, :, tf.newaxis], grid)
    tokens = tf.broadcast_to(tf.cast(source_ids, tf.int32)[:, tf.newaxis, :], grid)
    indices = tf.reshape(tf.stack([rows, slots, tokens], axis=-1), [-1, 3])
    mass = tf.tensor_scatter_nd_add(vocab_mass, indices, tf.reshape(copy_mass, [-1]))
    total = tf.reduce_sum(vocab_mass, -1, keepdims=True) + tf.reduce_sum(
        copy_mass, -1, keepdims=True
    )
    return tf.math.log(tf.maximum(mass, _TINY)) - tf.math.log(total)


def cache_entry(
    copy: CopyAttention,
    states: tf.Tensor,
    token_ids: tf.Tensor,
    lengths: tf.Tensor,
    cache_length: int | tf.Tensor,
    num_heads: int,
) -> tf.Tensor:
    """The cache's copy entry [1, 2, B, heads, T, head_size] of prefixes encoded as `states`.

    Args:
        copy: the model's copy attention.
        states: [B, L, H] the prefixes' final states.
        token_ids: [B, L] int32 the prefixes.
        lengths: [B] int32 real tokens per row: the source.
        cache_length: T >= L.
        num_heads: the cache's heads (H splits into them).
    """
    batch, length = tf.shape(states)[0], tf.shape(states)[1]
    head_size = copy.hidden_size // num_heads
    room = cache_length - length
    keys = tf.reshape(copy.key(states), [batch, length, num_heads, head_size])
    keys = tf.transpose(keys, [0, 2, 1, 3])
    source = tf.cast(tf.range(length)[tf.newaxis, :] < lengths[:, tf.newaxis], tf.float32)
    ids = tf.cast(token_ids, tf.float32) * source
    # Head 0, elements 0 and 1: the token id and the source flag; zeros elsewhere.
    values = tf.stack([ids, source], axis=-1)  # [B, L, 2]
    values = tf.pad(values, [[0, 0], [0, 0], [0, head_size - 2]])[:, tf.newaxis]
    values = tf.pad(values, [[0, 0], [0, num_heads - 1], [0, 0], [0, 0]])
    entry = tf.stack([keys, values])[tf.newaxis]
    return tf.pad(entry, [[0, 0], [0, 0], [0, 0], [0, 0], [0, room], [0, 0]])


def step_log_probs(
    copy: CopyAttention, vocab_logits: tf.Tensor, slot_states: tf.Tensor, entry: tf.Tensor
) -> tf.Tensor:
    """log P [B, V] of one new slot per row, from its state and the cache's copy entry.

    Args:
        copy: the model's copy attention.
        vocab_logits: [B, V] the MLM head's logits at the slot.
        slot_states: [B, H] the slot's final state.
        entry: [2, B, heads, T, head_size] the cache's copy entry (`cache_entry`).
    """
    batch, slots = tf.shape(entry)[1], tf.shape(entry)[3]
    keys = tf.reshape(tf.transpose(entry[0], [0, 2, 1, 3]), [batch, slots, copy.hidden_size])
    source_ids = tf.cast(tf.round(entry[1, :, 0, :, 0]), tf.int32)
    source = entry[1, :, 0, :, 1] > 0.5
    scores = copy.scores(slot_states[:, tf.newaxis, :], keys, source)
    return merged_log_probs(vocab_logits[:, tf.newaxis, :], scores, source_ids)[:, 0, :]
