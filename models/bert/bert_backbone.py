"""BertBackbone: the bare BERT encoder (Devlin et al., NAACL 2019), without a task head.

Two ways to run it:

* as a Keras functional model on a dict of `token_ids`, `segment_ids` and `padding_mask`
  ([B, L] each), with the attention mask built inside from `attention_mode` ("bidirectional",
  "causal" or "unilm"); this is what `model.save` / `keras.models.load_model` round-trip;
* through `encode(token_ids, segment_ids, attention_mask)`, with any explicit [B, L, L] mask
  (`models.bert.masks`), and `compiled_encoder(batch_size, length)`, which wraps it in a
  `tf.function` over fixed shapes, XLA-compiled by default (issue 3 measured a MiniLM-sized
  encoder at 0.7x PyTorch's speed as a plain tf.function and 1.35x with XLA on CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import keras
import tensorflow as tf

from models.bert.bert_layers import BertEmbeddings, BertTransformerLayer, bert_initializer
from models.bert.masks import build_attention_mask
from models.bert.overlap import DEFAULT_MAX_SENTENCE_COUNT

AttentionMode = Literal["bidirectional", "causal", "unilm"]
ATTENTION_MODES = ("bidirectional", "causal", "unilm")


@dataclass(frozen=True)
class BertConfig:
    """Shape of a BERT encoder; defaults are BERT-base (Devlin et al. 2019, Sec. 3).

    Attributes:
        vocab_size: WordPiece vocabulary size (30522 for English uncased, 21128 for Chinese).
        hidden_size: model width H.
        num_layers: number of encoder blocks.
        num_heads: attention heads per block.
        intermediate_size: feed-forward width (4H in BERT).
        max_position: length of the learned position table.
        type_vocab_size: number of segment ids.
        layer_norm_epsilon: LayerNorm epsilon (1e-12 in Google's and Hugging Face's BERT).
        dropout: dropout on embeddings, residual branches and attention probabilities.
        hidden_act: feed-forward activation (config.json's `hidden_act`).
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position: int = 512
    type_vocab_size: int = 2
    layer_norm_epsilon: float = 1e-12
    dropout: float = 0.1
    hidden_act: str = "gelu"

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> BertConfig:
        """From Hugging Face's config.json or Google's bert_config.json (same key names)."""
        return cls(
            vocab_size=int(data["vocab_size"]),
            hidden_size=int(data["hidden_size"]),
            num_layers=int(data["num_hidden_layers"]),
            num_heads=int(data["num_attention_heads"]),
            intermediate_size=int(data["intermediate_size"]),
            max_position=int(data.get("max_position_embeddings", cls.max_position)),
            type_vocab_size=int(data.get("type_vocab_size", cls.type_vocab_size)),
            layer_norm_epsilon=float(data.get("layer_norm_eps", cls.layer_norm_epsilon)),
            dropout=float(data.get("hidden_dropout_prob", cls.dropout)),
            hidden_act=str(data.get("hidden_act", cls.hidden_act)),
        )


@keras.saving.register_keras_serializable(package="kexue_bert")
class AttentionMaskBuilder(keras.layers.Layer):
    """[B, L] padding and segment ids -> [B, L, L] bool attention mask for `attention_mode`.

    Args:
        attention_mode: "bidirectional" (padding only), "causal" (left-to-right LM) or
            "unilm" (seq2seq: source bidirectional, target left-to-right; Dong et al. 2019).
    """

    def __init__(self, attention_mode: AttentionMode = "bidirectional", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if attention_mode not in ATTENTION_MODES:
            raise ValueError(f"attention_mode must be one of {ATTENTION_MODES}")
        self.attention_mode = attention_mode

    def call(self, padding: tf.Tensor, segment_ids: tf.Tensor) -> tf.Tensor:
        return build_attention_mask(padding, segment_ids, self.attention_mode)

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        return (input_shape[0], input_shape[1], input_shape[1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(attention_mode=self.attention_mode)
        return config


@keras.saving.register_keras_serializable(package="kexue_bert")
class BertBackbone(keras.Model):
    """BERT encoder: embeddings, `num_layers` post-LayerNorm blocks and the [CLS] pooler.

    Args:
        vocab_size, hidden_size, num_layers, num_heads, intermediate_size, max_position,
        type_vocab_size, layer_norm_epsilon, dropout, hidden_act: see `BertConfig`.
        attention_mode: mask built by the functional model ("bidirectional", "causal", "unilm").
        condition_size: width C of a condition vector that every LayerNorm takes
            (`ConditionalLayerNorm`): the functional model then has a fourth input,
            `condition` [B, C] float32. None (the default) is BERT as published.
        condition_hidden_units: the conditional LayerNorms' hidden projection width.
        overlap_sep_id: the [SEP] id, for a model that reads the n-gram "exact match" feature
            of a `[CLS] A [SEP] B [SEP]` source (`models.bert.overlap`, `BertEmbeddings`); None
            (the default) is BERT as published.
        overlap_max_length: with `overlap_sep_id`, the match-length feature capped at this
            (`models.bert.overlap.match_length_overlap`) instead of the bigram marks; None: bigram.
        sentence_end_ids, sentence_max_count, sentence_join_ids: with `overlap_sep_id`, the
            sentence-level feature too (`models.bert.overlap.sentence_overlap`,
            `BertEmbeddings`); None (the default): not read.

    Outputs of the functional model: a dict with `sequence_output` [B, L, H] (the token states)
    and `pooled_output` [B, H] (tanh dense of the [CLS] state, BERT's next-sentence input).

    Example:
        >>> import numpy as np
        >>> backbone = BertBackbone.from_bert_config(BertConfig(
        ...     vocab_size=30, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16))
        >>> out = backbone({"token_ids": np.array([[2, 5, 3, 0]]),
        ...                 "segment_ids": np.zeros((1, 4), "int32"),
        ...                 "padding_mask": np.array([[1, 1, 1, 0]])})
        >>> tuple(out["sequence_output"].shape)
        (1, 4, 8)
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        num_layers: int,
        num_heads: int,
        intermediate_size: int,
        max_position: int = 512,
        type_vocab_size: int = 2,
        layer_norm_epsilon: float = 1e-12,
        dropout: float = 0.1,
        hidden_act: str = "gelu",
        attention_mode: AttentionMode = "bidirectional",
        condition_size: int | None = None,
        condition_hidden_units: int | None = None,
        overlap_sep_id: int | None = None,
        overlap_max_length: int | None = None,
        sentence_end_ids: Sequence[int] | None = None,
        sentence_max_count: int = DEFAULT_MAX_SENTENCE_COUNT,
        sentence_join_ids: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        # Layers.
        embeddings = BertEmbeddings(
            vocab_size,
            hidden_size,
            max_position,
            type_vocab_size,
            layer_norm_epsilon,
            dropout,
            condition_size,
            condition_hidden_units,
            overlap_sep_id=overlap_sep_id,
            overlap_max_length=overlap_max_length,
            sentence_end_ids=sentence_end_ids,
            sentence_max_count=sentence_max_count,
            sentence_join_ids=sentence_join_ids,
            name="embeddings",
        )
        blocks = [
            BertTransformerLayer(
                hidden_size,
                num_heads,
                intermediate_size,
                layer_norm_epsilon,
                dropout,
                hidden_act,
                condition_size,
                condition_hidden_units,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        pooler = keras.layers.Dense(
            hidden_size, activation="tanh", kernel_initializer=bert_initializer(), name="pooler"
        )
        mask_builder = AttentionMaskBuilder(attention_mode, name="attention_mask")

        # Functional graph.
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
        padding = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding}
        condition = None
        if condition_size is not None:
            condition = keras.Input(shape=(condition_size,), dtype="float32", name="condition")
            inputs["condition"] = condition
        mask = mask_builder(padding, segment_ids)
        x = embeddings(token_ids, segment_ids, condition=condition)
        for block in blocks:
            x = block(x, attention_mask=mask, condition=condition)
        pooled = pooler(x[:, 0, :])
        super().__init__(
            inputs=inputs, outputs={"sequence_output": x, "pooled_output": pooled}, **kwargs
        )
        self.embeddings = embeddings
        self.transformer_layers = blocks
        self.pooler = pooler

        # Config.
        self.config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_heads=num_heads,
            intermediate_size=intermediate_size,
            max_position=max_position,
            type_vocab_size=type_vocab_size,
            layer_norm_epsilon=layer_norm_epsilon,
            dropout=dropout,
            hidden_act=hidden_act,
        )
        self.attention_mode = attention_mode
        self.condition_size = condition_size
        self.condition_hidden_units = condition_hidden_units
        self.overlap_sep_id = overlap_sep_id
        self.overlap_max_length = overlap_max_length
        self.sentence_end_ids = embeddings.sentence_end_ids
        self.sentence_max_count = embeddings.sentence_max_count
        self.sentence_join_ids = embeddings.sentence_join_ids

    @classmethod
    def from_bert_config(
        cls, config: BertConfig, attention_mode: AttentionMode = "bidirectional", **kwargs: Any
    ) -> BertBackbone:
        return cls(**asdict(config), attention_mode=attention_mode, **kwargs)

    @property
    def token_embedding(self) -> keras.layers.Embedding:
        """The [V, H] token table, shared with a tied MLM head."""
        return self.embeddings.token_embedding

    def encode(
        self,
        token_ids: tf.Tensor,
        segment_ids: tf.Tensor,
        attention_mask: tf.Tensor | None,
        training: bool | None = None,
        condition: tf.Tensor | None = None,
        position_ids: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """Token states [B, L, H] under an explicit [B, L, L] bool attention mask.

        Args:
            token_ids: [B, L] int32 WordPiece ids.
            segment_ids: [B, L] int32 segment ids.
            attention_mask: [B, L, L] bool (`models.bert.masks`), True where i may see j;
                None lets every position see every other.
            training: whether dropout is active.
            condition: [B, C] for the conditional LayerNorms (`condition_size`).
            position_ids: [B, L] int32 positions; default 0..L-1 in every row (texts packed
                into one row each start again at 0).
        """
        x = self.embeddings(
            token_ids,
            segment_ids,
            training=training,
            position_ids=position_ids,
            condition=condition,
        )
        for block in self.transformer_layers:
            x = block(x, attention_mask=attention_mask, training=training, condition=condition)
        return x

    def encode_with_cache(
        self,
        token_ids: tf.Tensor,
        segment_ids: tf.Tensor,
        attention_mask: tf.Tensor | None,
        cache_length: int | tf.Tensor,
        training: bool | None = None,
        condition: tf.Tensor | None = None,
        return_attention: bool = False,
    ) -> Any:
        """Token states of a prefix and its key/value cache, preallocated for later tokens.

        Args:
            token_ids, segment_ids: [B, L] int32 (position j is token j).
            attention_mask: [B, L, L] bool, as for `encode`.
            cache_length: T >= L, slots in the cache: L for the prefix, T - L for the tokens
                that `decode_with_cache` adds one by one.
            training: whether dropout is active.
            condition: [B, C] for the conditional LayerNorms (`condition_size`).
            return_attention: also return each layer's attention probabilities, averaged over
                the heads, [num_layers, B, L, L] (query, key), as a third element.

        Returns:
            (states [B, L, H], cache [num_layers, 2, B, heads, T, head_size]): `cache[i, 0]` holds
            layer i's keys and `cache[i, 1]` its values, slot j for position j; slots >= L are 0.
        """
        x = self.embeddings(token_ids, segment_ids, training=training, condition=condition)
        room = cache_length - tf.shape(token_ids)[1]
        layers = []
        attention = []
        for block in self.transformer_layers:
            key, value = block.attention.project_key_value(x)
            x, probs = block.call_with_key_value(
                x,
                key,
                value,
                attention_mask,
                training=training,
                condition=condition,
                return_probs=True,
            )
            layers.append(
                tf.pad(tf.stack([key, value]), [[0, 0], [0, 0], [0, 0], [0, room], [0, 0]])
            )
            if return_attention:
                attention.append(tf.reduce_mean(probs, axis=1))
        if return_attention:
            return x, tf.stack(layers), tf.stack(attention)
        return x, tf.stack(layers)

    def decode_with_cache(
        self,
        token_ids: tf.Tensor,
        segment_ids: tf.Tensor,
        position_ids: tf.Tensor,
        cache: tf.Tensor,
        cache_mask: tf.Tensor,
        training: bool | None = None,
        condition: tf.Tensor | None = None,
        return_attention: bool = False,
    ) -> Any:
        """States of new tokens after a cached prefix, writing their keys and values into it.

        Each new token's key and value go to the cache slot of its position (the cache is
        left-aligned: slot j is position j), so rows whose prefixes differ in length decode in
        one batch, and slots a row never reached (its padding) are simply overwritten. The cache
        is only read while the layers run, and written once at the end (one scatter).

        Args:
            token_ids, segment_ids: [B, Lq] int32 the new tokens (Lq = 1 when decoding).
            position_ids: [B, Lq] int32 their positions, each < T.
            cache: [num_layers, 2, B, heads, T, head_size] from `encode_with_cache` (or from an
                earlier call of this method).
            cache_mask: [B, Lq, T] bool, True where a new token may see a cache slot (as it is
                before this call); new tokens also see themselves and the new tokens before them.
            training: whether dropout is active.
            condition: [B, C] for the conditional LayerNorms (`condition_size`).
            return_attention: also return each layer's attention probabilities of the new
                tokens over the cache slots (as it was before this call), averaged over the
                heads, [num_layers, B, Lq, T], as a third element.

        Returns:
            (states [B, Lq, H], the updated cache, same shape).
        """
        x = self.embeddings(
            token_ids,
            segment_ids,
            training=training,
            position_ids=position_ids,
            condition=condition,
        )
        new_keys_values = []
        attention = []
        for i, block in enumerate(self.transformer_layers):
            x, key, value, probs = block.call_with_cache(
                x,
                cache[i, 0],
                cache[i, 1],
                cache_mask,
                training=training,
                condition=condition,
                return_probs=True,
            )
            new_keys_values.append(tf.stack([key, value]))
            if return_attention:
                attention.append(tf.reduce_mean(probs, axis=1))
        # [layers, 2, B, heads, Lq, Dh] -> one update of Dh numbers per (layer, k/v, row, head,
        # new token), at slot position_ids[row, token].
        updates = tf.stack(new_keys_values)
        grid = tf.shape(updates)[:5]
        ranges = [tf.range(grid[axis]) for axis in range(4)]
        layer, kind, row, head = (
            tf.broadcast_to(tf.reshape(r, [-1 if a == axis else 1 for a in range(5)]), grid)
            for axis, r in enumerate(ranges)
        )
        slot = tf.broadcast_to(position_ids[tf.newaxis, tf.newaxis, :, tf.newaxis, :], grid)
        indices = tf.reshape(tf.stack([layer, kind, row, head, slot], axis=-1), [-1, 5])
        flat_updates = tf.reshape(updates, [-1, tf.shape(updates)[5]])
        cache = tf.tensor_scatter_nd_update(cache, indices, flat_updates)
        if return_attention:
            return x, cache, tf.stack(attention)
        return x, cache

    def compiled_encoder(
        self,
        batch_size: int,
        sequence_length: int,
        jit_compile: bool = True,
        attention_mode: str | None = None,
    ) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
        """A tf.function over fixed [batch_size, sequence_length] int32 inputs -> token states.

        Fixed shapes let XLA compile the whole encoder once; callers pad their batch up to
        (batch_size, sequence_length), as the service's length buckets do.

        Args:
            batch_size: B of every call.
            sequence_length: L of every call.
            jit_compile: compile with XLA.
            attention_mode: mask kind; defaults to the backbone's `attention_mode`.

        Returns:
            f(token_ids, segment_ids, padding_mask) -> [B, L, H] float32 token states.
        """
        mode = attention_mode or self.attention_mode
        spec = tf.TensorSpec([batch_size, sequence_length], tf.int32)

        @tf.function(input_signature=[spec, spec, spec], jit_compile=jit_compile)
        def encoder(token_ids: tf.Tensor, segment_ids: tf.Tensor, padding: tf.Tensor) -> tf.Tensor:
            mask = build_attention_mask(padding, segment_ids, mode)
            return self.encode(token_ids, segment_ids, mask, training=False)

        return encoder

    def get_config(self) -> dict[str, Any]:
        # Only the constructor's arguments: the functional graph is rebuilt from them.
        return {
            "name": self.name,
            "trainable": self.trainable,
            **asdict(self.config),
            "attention_mode": self.attention_mode,
            "condition_size": self.condition_size,
            "condition_hidden_units": self.condition_hidden_units,
            # Only when set: configs of models without the feature stay as they were.
            **({} if self.overlap_sep_id is None else {"overlap_sep_id": self.overlap_sep_id}),
            **(
                {}
                if self.overlap_max_length is None
                else {"overlap_max_length": self.overlap_max_length}
            ),
            **(
                {}
                if self.sentence_end_ids is None
                else {
                    "sentence_end_ids": list(self.sentence_end_ids),
                    "sentence_max_count": self.sentence_max_count,
                }
            ),
            **(
                {}
                if not self.sentence_join_ids
                else {"sentence_join_ids": list(self.sentence_join_ids)}
            ),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> BertBackbone:
        return cls(**config)
