"""Layers of the BERT encoder (Devlin et al., "BERT: Pre-training of Deep Bidirectional
Transformers for Language Understanding", NAACL 2019; Vaswani et al., "Attention Is All You Need",
NeurIPS 2017, Sec. 3.2 for the scaled dot-product attention).

The self-attention layer exposes its steps (`project_query`, `project_key_value`, `attend`) so
that incremental decoding can project only the new token, append its keys and values to a cache
and attend over the cache, without a second implementation of the same arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from models.bert.conditional_layer_norm import apply_layer_norm, make_layer_norm
from models.bert.masks import mask_to_bias
from models.bert.overlap import (
    DEFAULT_MAX_SENTENCE_COUNT,
    bigram_overlap,
    match_length_overlap,
    sentence_overlap,
)

# BERT's initializer: truncated normal with stddev 0.02 (`initializer_range` in bert_config.json).
INITIALIZER_RANGE = 0.02

# Activations named as in config.json's `hidden_act`. Hugging Face's "gelu" is the exact,
# erf-based GELU (Hendrycks & Gimpel 2016, Eq. 1); "gelu_new" / "gelu_pytorch_tanh" the tanh
# approximation that Google's TF code computes.
ACTIVATIONS = {
    "gelu": lambda x: keras.activations.gelu(x, approximate=False),
    "gelu_new": lambda x: keras.activations.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: keras.activations.gelu(x, approximate=True),
    "relu": keras.activations.relu,
}


def bert_initializer() -> keras.initializers.Initializer:
    return keras.initializers.TruncatedNormal(stddev=INITIALIZER_RANGE)


def split_heads(x: tf.Tensor, num_heads: int) -> tf.Tensor:
    """[B, L, H * Dh] -> [B, H, L, Dh]."""
    batch, length = tf.shape(x)[0], tf.shape(x)[1]
    head_size = x.shape[-1] // num_heads
    return tf.transpose(tf.reshape(x, [batch, length, num_heads, head_size]), [0, 2, 1, 3])


def merge_heads(x: tf.Tensor) -> tf.Tensor:
    """[B, H, L, Dh] -> [B, L, H * Dh]."""
    batch, length = tf.shape(x)[0], tf.shape(x)[2]
    width = x.shape[1] * x.shape[3]
    return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [batch, length, width])


@keras.saving.register_keras_serializable(package="kexue_bert")
class BertEmbeddings(keras.layers.Layer):
    """Token + segment + learned absolute position embeddings, then LayerNorm and dropout.

    Args:
        vocab_size: number of WordPiece tokens.
        hidden_size: embedding width.
        max_position: longest sequence the position table holds.
        type_vocab_size: number of segment ids.
        layer_norm_epsilon: LayerNorm epsilon.
        dropout: dropout rate after the LayerNorm.
        condition_size: width of a condition vector that the LayerNorm takes
            (`ConditionalLayerNorm`); None for BERT's plain LayerNorm.
        condition_hidden_units: the conditional LayerNorm's hidden projection width.
        overlap_sep_id: the [SEP] id of a model that reads the n-gram "exact match" feature
            (`models.bert.overlap.bigram_overlap`: source tokens in a bigram the other part of
            `[CLS] A [SEP] B [SEP]` also holds get one more learned vector, zero at the start so
            that a pretrained model starts unchanged); None (BERT as published): no feature.
        overlap_max_length: with `overlap_sep_id`, read the match-length feature instead of the
            bigram marks (`models.bert.overlap.match_length_overlap`: the length of the longest
            common substring covering each source token, capped at this; one learned vector per
            length 1..cap, zero at the start; length 0 adds nothing). None: the bigram marks.
        sentence_end_ids: with `overlap_sep_id`, also read the sentence-level feature: each
            token of A gets how many distinct bigrams of B its sentence holds, sentences ending
            at these ids (`models.bert.overlap.sentence_overlap`; one learned vector per count
            1..`sentence_max_count`, zero at the start; 0 adds nothing). None: not read.
        sentence_max_count: the cap of those counts.
        sentence_join_ids: with `sentence_end_ids`, the ids that, opening a sentence, join it to
            the sentence before (a pronoun subject, 他/她/它: `sentence_overlap`'s `join_ids`).
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        max_position: int,
        type_vocab_size: int,
        layer_norm_epsilon: float,
        dropout: float,
        condition_size: int | None = None,
        condition_hidden_units: int | None = None,
        overlap_sep_id: int | None = None,
        overlap_max_length: int | None = None,
        sentence_end_ids: Sequence[int] | None = None,
        sentence_max_count: int = DEFAULT_MAX_SENTENCE_COUNT,
        sentence_join_ids: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if overlap_max_length is not None and overlap_sep_id is None:
            raise ValueError("overlap_max_length needs overlap_sep_id")
        if sentence_end_ids is not None and overlap_sep_id is None:
            raise ValueError("sentence_end_ids needs overlap_sep_id")
        self.sentence_end_ids = (
            None if sentence_end_ids is None else tuple(int(i) for i in sentence_end_ids)
        )
        self.sentence_max_count = int(sentence_max_count)
        if sentence_join_ids and sentence_end_ids is None:
            raise ValueError("sentence_join_ids needs sentence_end_ids")
        self.sentence_join_ids = tuple(int(i) for i in sentence_join_ids)
        self.overlap_sep_id = overlap_sep_id
        self.overlap_max_length = overlap_max_length
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position = max_position
        self.type_vocab_size = type_vocab_size
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout_rate = dropout
        self.condition_size = condition_size
        self.condition_hidden_units = condition_hidden_units
        self.token_embedding = keras.layers.Embedding(
            vocab_size, hidden_size, embeddings_initializer=bert_initializer(), name="token"
        )
        self.segment_embedding = keras.layers.Embedding(
            type_vocab_size, hidden_size, embeddings_initializer=bert_initializer(), name="segment"
        )
        self.position_embedding = keras.layers.Embedding(
            max_position, hidden_size, embeddings_initializer=bert_initializer(), name="position"
        )
        self.layer_norm = make_layer_norm(
            layer_norm_epsilon, "layer_norm", condition_size, condition_hidden_units
        )
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape: Any = None) -> None:
        self.token_embedding.build((None, None))
        self.segment_embedding.build((None, None))
        self.position_embedding.build((None, None))
        self.layer_norm.build((None, None, self.hidden_size))
        if self.overlap_max_length is not None:
            self.overlap_lengths = self.add_weight(
                name="overlap_lengths",
                shape=(self.overlap_max_length, self.hidden_size),
                initializer="zeros",
            )
        elif self.overlap_sep_id is not None:
            self.overlap_vector = self.add_weight(
                name="overlap", shape=(self.hidden_size,), initializer="zeros"
            )
        if self.sentence_end_ids is not None:
            self.sentence_counts = self.add_weight(
                name="sentence_counts",
                shape=(self.sentence_max_count, self.hidden_size),
                initializer="zeros",
            )
        self.built = True

    def call(
        self,
        token_ids: tf.Tensor,
        segment_ids: tf.Tensor,
        start_position: int | tf.Tensor = 0,
        training: bool | None = None,
        position_ids: tf.Tensor | None = None,
        condition: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Embed; `start_position` offsets the positions (a decoding step after a cached prefix).

        `position_ids` ([B, L] int), when given, replaces `range(L) + start_position`: rows of a
        decoding batch whose prefixes differ in length are at different positions. `condition`
        ([B, C]) goes to a conditional LayerNorm.
        """
        if position_ids is None:
            length = tf.shape(token_ids)[1]
            positions = self.position_embedding(tf.range(length) + start_position)[tf.newaxis]
        else:
            positions = self.position_embedding(position_ids)
        x = self.token_embedding(token_ids) + self.segment_embedding(segment_ids) + positions
        if self.overlap_sep_id is not None and self.overlap_max_length is not None:
            lengths = match_length_overlap(
                token_ids, segment_ids, self.overlap_sep_id, self.overlap_max_length
            )
            # Row 0 (no match: also every written token, so cached decoding steps add nothing).
            table = tf.concat(
                [tf.zeros_like(self.overlap_lengths[:1]), self.overlap_lengths], axis=0
            )
            x = x + tf.gather(tf.cast(table, x.dtype), lengths)
        elif self.overlap_sep_id is not None:
            marks = bigram_overlap(token_ids, segment_ids, self.overlap_sep_id)
            x = x + marks[:, :, tf.newaxis] * self.overlap_vector
        if self.overlap_sep_id is not None and self.sentence_end_ids is not None:
            counts = sentence_overlap(
                token_ids,
                segment_ids,
                self.overlap_sep_id,
                self.sentence_end_ids,
                self.sentence_max_count,
                self.sentence_join_ids,
            )
            # Row 0 (no bigram of the question in the sentence, and every token outside A).
            table = tf.concat(
                [tf.zeros_like(self.sentence_counts[:1]), self.sentence_counts], axis=0
            )
            x = x + tf.gather(tf.cast(table, x.dtype), counts)
        return self.dropout(apply_layer_norm(self.layer_norm, x, condition), training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            max_position=self.max_position,
            type_vocab_size=self.type_vocab_size,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dropout=self.dropout_rate,
            condition_size=self.condition_size,
            condition_hidden_units=self.condition_hidden_units,
        )
        if self.overlap_sep_id is not None:
            config.update(overlap_sep_id=self.overlap_sep_id)
        if self.overlap_max_length is not None:
            config.update(overlap_max_length=self.overlap_max_length)
        if self.sentence_end_ids is not None:
            config.update(
                sentence_end_ids=list(self.sentence_end_ids),
                sentence_max_count=self.sentence_max_count,
            )
        if self.sentence_join_ids:
            config.update(sentence_join_ids=list(self.sentence_join_ids))
        return config


@keras.saving.register_keras_serializable(package="kexue_bert")
class BertSelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product self-attention with an explicit [B, Lq, Lk] mask.

    softmax(Q K^T / sqrt(d_head) + bias) V, per head (Vaswani et al. 2017, Eq. 1), then the output
    projection. The mask may be any boolean [B, Lq, Lk] tensor (`models.bert.masks`).

    Args:
        hidden_size: model width H * d_head.
        num_heads: number of heads H.
        dropout: dropout on the attention probabilities.
    """

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not a multiple of {num_heads} heads")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.dropout_rate = dropout

        def dense(name: str) -> keras.layers.Dense:
            return keras.layers.Dense(hidden_size, kernel_initializer=bert_initializer(), name=name)

        self.query_dense = dense("query")
        self.key_dense = dense("key")
        self.value_dense = dense("value")
        self.output_dense = dense("output")
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape: Any = None) -> None:
        for layer in (self.query_dense, self.key_dense, self.value_dense, self.output_dense):
            layer.build((None, None, self.hidden_size))
        self.built = True

    def project_query(self, x: tf.Tensor) -> tf.Tensor:
        """[B, L, H * Dh] hidden states -> [B, H, L, Dh] queries."""
        return split_heads(self.query_dense(x), self.num_heads)

    def project_key_value(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[B, L, H * Dh] hidden states -> ([B, H, L, Dh] keys, [B, H, L, Dh] values)."""
        return (
            split_heads(self.key_dense(x), self.num_heads),
            split_heads(self.value_dense(x), self.num_heads),
        )

    def attend(
        self,
        query: tf.Tensor,
        key: tf.Tensor,
        value: tf.Tensor,
        attention_mask: tf.Tensor | None = None,
        training: bool | None = None,
        return_probs: bool = False,
    ) -> Any:
        """Attention of [B, H, Lq, Dh] queries over [B, H, Lk, Dh] keys/values -> [B, Lq, H * Dh].

        Args:
            query, key, value: projected heads.
            attention_mask: [B, Lq, Lk] bool, True where attention is allowed; None for all.
            training: whether dropout is active.
            return_probs: also return the attention probabilities [B, H, Lq, Lk] (before
                dropout): (output, probs).
        """
        logits = tf.matmul(query, key, transpose_b=True) / math.sqrt(self.head_size)
        if attention_mask is not None:
            logits += mask_to_bias(attention_mask, logits.dtype)
        softmax = tf.nn.softmax(logits, axis=-1)
        probs = self.dropout(softmax, training=training)
        output = self.output_dense(merge_heads(tf.matmul(probs, value)))
        return (output, softmax) if return_probs else output

    def attend_cached(
        self,
        query: tf.Tensor,
        new_key: tf.Tensor,
        new_value: tf.Tensor,
        cache_key: tf.Tensor,
        cache_value: tf.Tensor,
        cache_mask: tf.Tensor,
        training: bool | None = None,
        return_probs: bool = False,
    ) -> Any:
        """Attention of Lq new tokens over a cache and over themselves (left to right).

        The same softmax as `attend` over the keys [cache, new tokens], computed in two blocks so
        that the cache is only read (no concatenated copy of it per layer and step).

        Args:
            query, new_key, new_value: [B, H, Lq, Dh] the new tokens' projections.
            cache_key, cache_value: [B, H, T, Dh] earlier tokens' keys and values.
            cache_mask: [B, Lq, T] bool, True where a new token may see a cache slot.
            training: whether dropout is active.
            return_probs: also return the new tokens' attention probabilities over the cache
                slots [B, H, Lq, T] (before dropout; with the new tokens' own they sum to 1).

        Returns:
            [B, Lq, H * Dh]; new token i sees new tokens j <= i. With `return_probs`, (that,
            probs over the cache).
        """
        scale = math.sqrt(self.head_size)
        cache_logits = tf.matmul(query, cache_key, transpose_b=True) / scale
        cache_logits += mask_to_bias(cache_mask, cache_logits.dtype)
        new_logits = tf.matmul(query, new_key, transpose_b=True) / scale
        new_count = tf.shape(query)[2]
        causal = tf.range(new_count)[tf.newaxis, :] <= tf.range(new_count)[:, tf.newaxis]
        new_logits += mask_to_bias(causal[tf.newaxis], new_logits.dtype)
        softmax = tf.nn.softmax(tf.concat([cache_logits, new_logits], axis=-1), axis=-1)
        probs = self.dropout(softmax, training=training)
        slots = tf.shape(cache_key)[2]
        context = tf.matmul(probs[..., :slots], cache_value) + tf.matmul(
            probs[..., slots:], new_value
        )
        output = self.output_dense(merge_heads(context))
        return (output, softmax[..., :slots]) if return_probs else output

    def call(
        self,
        x: tf.Tensor,
        attention_mask: tf.Tensor | None = None,
        training: bool | None = None,
    ) -> tf.Tensor:
        key, value = self.project_key_value(x)
        return self.attend(self.project_query(x), key, value, attention_mask, training=training)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size, num_heads=self.num_heads, dropout=self.dropout_rate
        )
        return config


@keras.saving.register_keras_serializable(package="kexue_bert")
class BertTransformerLayer(keras.layers.Layer):
    """One post-LayerNorm encoder block, as in BERT (and the original Transformer):

        h = LayerNorm(x + Dropout(SelfAttention(x)))
        y = LayerNorm(h + Dropout(W2 act(W1 h + b1) + b2))

    Args:
        hidden_size: model width.
        num_heads: attention heads.
        intermediate_size: width of the feed-forward layer.
        layer_norm_epsilon: LayerNorm epsilon.
        dropout: dropout rate on the residual branches and attention probabilities.
        hidden_act: feed-forward activation, a key of `ACTIVATIONS`.
        condition_size: width of a condition vector that both LayerNorms take
            (`ConditionalLayerNorm`); None for BERT's plain LayerNorms.
        condition_hidden_units: the conditional LayerNorms' hidden projection width.

    Every call method takes an optional `condition` [B, C] for the conditional LayerNorms.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        layer_norm_epsilon: float,
        dropout: float,
        hidden_act: str = "gelu",
        condition_size: int | None = None,
        condition_hidden_units: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_act not in ACTIVATIONS:
            raise ValueError(f"unknown hidden_act {hidden_act!r}; known: {sorted(ACTIVATIONS)}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.layer_norm_epsilon = layer_norm_epsilon
        self.dropout_rate = dropout
        self.hidden_act = hidden_act
        self.condition_size = condition_size
        self.condition_hidden_units = condition_hidden_units
        self.attention = BertSelfAttention(hidden_size, num_heads, dropout, name="attention")
        self.attention_dropout = keras.layers.Dropout(dropout)
        self.attention_layer_norm = make_layer_norm(
            layer_norm_epsilon, "attention_layer_norm", condition_size, condition_hidden_units
        )
        self.intermediate_dense = keras.layers.Dense(
            intermediate_size,
            activation=ACTIVATIONS[hidden_act],
            kernel_initializer=bert_initializer(),
            name="intermediate",
        )
        self.output_dense = keras.layers.Dense(
            hidden_size, kernel_initializer=bert_initializer(), name="output"
        )
        self.output_dropout = keras.layers.Dropout(dropout)
        self.output_layer_norm = make_layer_norm(
            layer_norm_epsilon, "output_layer_norm", condition_size, condition_hidden_units
        )

    def build(self, input_shape: Any = None) -> None:
        self.attention.build()
        self.attention_layer_norm.build((None, None, self.hidden_size))
        self.intermediate_dense.build((None, None, self.hidden_size))
        self.output_dense.build((None, None, self.intermediate_size))
        self.output_layer_norm.build((None, None, self.hidden_size))
        self.built = True

    def feed_forward(
        self, h: tf.Tensor, training: bool | None = None, condition: tf.Tensor | None = None
    ) -> tf.Tensor:
        """The second half of the block, given h after the attention's residual and LayerNorm."""
        y = self.output_dropout(self.output_dense(self.intermediate_dense(h)), training=training)
        return apply_layer_norm(self.output_layer_norm, h + y, condition)

    def _attention_residual(
        self, x: tf.Tensor, attended: tf.Tensor, training: bool | None, condition: tf.Tensor | None
    ) -> tf.Tensor:
        residual = x + self.attention_dropout(attended, training=training)
        return apply_layer_norm(self.attention_layer_norm, residual, condition)

    def call(
        self,
        x: tf.Tensor,
        attention_mask: tf.Tensor | None = None,
        training: bool | None = None,
        condition: tf.Tensor | None = None,
    ) -> tf.Tensor:
        attended = self.attention(x, attention_mask=attention_mask, training=training)
        h = self._attention_residual(x, attended, training, condition)
        return self.feed_forward(h, training=training, condition=condition)

    def call_with_key_value(
        self,
        x: tf.Tensor,
        key: tf.Tensor,
        value: tf.Tensor,
        attention_mask: tf.Tensor | None = None,
        training: bool | None = None,
        condition: tf.Tensor | None = None,
        return_probs: bool = False,
    ) -> Any:
        """The block for the queries of x over given keys and values (a key/value cache).

        With the keys and values of x itself (`self.attention.project_key_value(x)`) this is
        `call`; with a cache that holds earlier tokens' keys and values, the new tokens' states
        come out as if the whole sequence had been run, at the cost of the new tokens only.

        Args:
            x: [B, Lq, H * Dh] the new tokens' input states.
            key, value: [B, heads, Lk, Dh] keys and values of every token the queries may see.
            attention_mask: [B, Lq, Lk] bool, True where attention is allowed.
            training: whether dropout is active.
            return_probs: also return the attention probabilities [B, heads, Lq, Lk]:
                (output, probs).
        """
        query = self.attention.project_query(x)
        attended, probs = self.attention.attend(
            query, key, value, attention_mask, training=training, return_probs=True
        )
        h = self._attention_residual(x, attended, training, condition)
        output = self.feed_forward(h, training=training, condition=condition)
        return (output, probs) if return_probs else output

    def call_with_cache(
        self,
        x: tf.Tensor,
        cache_key: tf.Tensor,
        cache_value: tf.Tensor,
        cache_mask: tf.Tensor,
        training: bool | None = None,
        condition: tf.Tensor | None = None,
        return_probs: bool = False,
    ) -> Any:
        """The block for new tokens after cached ones (`BertSelfAttention.attend_cached`).

        Args:
            x: [B, Lq, H * Dh] the new tokens' input states.
            cache_key, cache_value: [B, heads, T, Dh] earlier tokens' keys and values.
            cache_mask: [B, Lq, T] bool, True where a new token may see a cache slot.
            training: whether dropout is active.

            return_probs: also return the new tokens' attention probabilities over the cache
                slots [B, heads, Lq, T], as a fourth element.

        Returns:
            (output states [B, Lq, H * Dh], the new tokens' keys and values [B, heads, Lq, Dh]),
            the keys and values for the caller to write into its cache.
        """
        query = self.attention.project_query(x)
        new_key, new_value = self.attention.project_key_value(x)
        attended, probs = self.attention.attend_cached(
            query,
            new_key,
            new_value,
            cache_key,
            cache_value,
            cache_mask,
            training=training,
            return_probs=True,
        )
        h = self._attention_residual(x, attended, training, condition)
        output = self.feed_forward(h, training=training, condition=condition)
        if return_probs:
            return output, new_key, new_value, probs
        return output, new_key, new_value

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            layer_norm_epsilon=self.layer_norm_epsilon,
            dropout=self.dropout_rate,
            hidden_act=self.hidden_act,
            condition_size=self.condition_size,
            condition_hidden_units=self.condition_hidden_units,
        )
        return config
