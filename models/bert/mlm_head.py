"""BERT's masked-language-model head, tied to the token embeddings (Devlin et al. 2019, Sec. 3.1).

logits = LayerNorm(act(h W + b)) E^T + output_bias, with E the backbone's [V, H] token table: the
output projection shares its weights with the input embedding (Press & Wolf, "Using the Output
Embedding to Improve Language Models", EACL 2017), and only the per-token bias is the head's own.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from models.bert.bert_layers import ACTIVATIONS, bert_initializer
from models.bert.conditional_layer_norm import apply_layer_norm, make_layer_norm


@keras.saving.register_keras_serializable(package="kexue_bert")
class BertMaskedLMHead(keras.layers.Layer):
    """Transform (dense, activation, LayerNorm), then vocabulary logits through the tied table.

    Args:
        token_embedding: the backbone's token `keras.layers.Embedding`
            (`BertBackbone.token_embedding`); its table is the output projection. Not part
            of `get_config`: pass it again to `from_config`, as keras-hub's tied heads do.
        hidden_act: activation of the transform, as in the backbone's config.
        layer_norm_epsilon: LayerNorm epsilon.
        condition_size: width of a condition vector that the transform's LayerNorm takes
            (`ConditionalLayerNorm`, as in bert4keras' conditional LM); None for BERT's.
        condition_hidden_units: the conditional LayerNorm's hidden projection width.

    Example:
        >>> head = BertMaskedLMHead(backbone.token_embedding)
        >>> logits = head(backbone(inputs)["sequence_output"])   # [B, L, V]
    """

    def __init__(
        self,
        token_embedding: keras.layers.Embedding,
        hidden_act: str = "gelu",
        layer_norm_epsilon: float = 1e-12,
        condition_size: int | None = None,
        condition_hidden_units: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.condition_size = condition_size
        self.condition_hidden_units = condition_hidden_units
        self.hidden_act = hidden_act
        self.layer_norm_epsilon = layer_norm_epsilon
        self.vocab_size = int(token_embedding.input_dim)
        self.hidden_size = int(token_embedding.output_dim)
        self.transform_dense = keras.layers.Dense(
            self.hidden_size,
            activation=ACTIVATIONS[hidden_act],
            kernel_initializer=bert_initializer(),
            name="transform",
        )
        self.transform_layer_norm = make_layer_norm(
            layer_norm_epsilon, "transform_layer_norm", condition_size, condition_hidden_units
        )

    def build(self, input_shape: Any = None) -> None:
        self.transform_dense.build((None, None, self.hidden_size))
        self.transform_layer_norm.build((None, None, self.hidden_size))
        # A checkpoint without MLM weights (a sentence-transformers folder) leaves it at zero.
        self.output_bias = self.add_weight(
            shape=(self.vocab_size,), initializer="zeros", name="output_bias"
        )
        self.built = True

    def call(self, sequence_output: tf.Tensor, condition: tf.Tensor | None = None) -> tf.Tensor:
        """[B, L, H] token states (and [B, C] condition) -> [B, L, V] logits."""
        h = apply_layer_norm(
            self.transform_layer_norm, self.transform_dense(sequence_output), condition
        )
        table = tf.convert_to_tensor(self.token_embedding.embeddings)
        return tf.matmul(h, tf.cast(table, h.dtype), transpose_b=True) + self.output_bias

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_act=self.hidden_act,
            layer_norm_epsilon=self.layer_norm_epsilon,
            condition_size=self.condition_size,
            condition_hidden_units=self.condition_hidden_units,
        )
        return config


def next_token_loss(logits: tf.Tensor, token_ids: tf.Tensor, loss_mask: tf.Tensor) -> tf.Tensor:
    """Mean cross-entropy of the target tokens: the logits at t - 1 scored against token t.

    The loss of every left-to-right use of the head (a UniLM answer, a conditional LM's text).

    Args:
        logits: [B, L, V] from the head.
        token_ids: [B, L] the sequences.
        loss_mask: [B, L] 1 on the tokens to predict, aligned with `token_ids`.

    Returns:
        Scalar: summed cross-entropy over masked targets / number of masked targets.
    """
    targets = tf.cast(token_ids[:, 1:], tf.int32)
    mask = tf.cast(loss_mask[:, 1:], logits.dtype)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=targets, logits=logits[:, :-1]
    )
    return tf.reduce_sum(cross_entropy * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
