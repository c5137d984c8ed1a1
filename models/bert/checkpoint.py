"""Pretrained BERT weights from the two folders users have.

* Hugging Face: `config.json`, `model.safetensors`, `vocab.txt` (read with safetensors' numpy API,
  no PyTorch). Keys may carry a `bert.` prefix (BertForPreTraining, BertForMaskedLM) or not
  (BertModel, sentence-transformers); LayerNorm parameters are `weight`/`bias` or, in old
  conversions, `gamma`/`beta`. Linear weights are stored [out, in] and transposed here.
* Google's original TF checkpoint: `bert_config.json`, `bert_model.ckpt.{index,data-*}`,
  `vocab.txt`, with variable names such as `bert/encoder/layer_0/attention/self/query/kernel`
  (kernels [in, out], as Keras has them).

Missing MLM-head weights (a sentence-transformers folder has none) leave the head tied to the
token embeddings with a zero output bias and its transform freshly initialised; a missing pooler
stays freshly initialised. Missing encoder weights are an error.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models.bert.bert_backbone import AttentionMode, BertBackbone, BertConfig
from models.bert.mlm_head import BertMaskedLMHead
from models.bert.overlap import DEFAULT_MAX_SENTENCE_COUNT
from models.bert.tokenizer import TOKENIZER_CONFIG_FILE, VOCAB_FILE, BertTokenizer

logger = logging.getLogger(__name__)

HF_CONFIG_FILE = "config.json"
HF_WEIGHTS_FILE = "model.safetensors"
GOOGLE_CONFIG_FILE = "bert_config.json"
GOOGLE_CHECKPOINT_PREFIX = "bert_model.ckpt"
HF_PREFIXES = ("", "bert.")


@dataclass
class LoadedBert:
    """A checkpoint loaded into Keras.

    Attributes:
        config: the encoder's shape.
        backbone: the encoder with the checkpoint's weights.
        mlm_head: the tied MLM head (when asked for), else None.
        tokenizer: WordPiece tokenizer on the folder's vocab.txt.
        missing: checkpoint names that were absent and left at their initial values.
    """

    config: BertConfig
    backbone: BertBackbone
    mlm_head: BertMaskedLMHead | None
    tokenizer: BertTokenizer
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Slot:
    """One Keras variable and its name in each checkpoint format."""

    variable: keras.Variable
    hf_name: str  # without the optional "bert." prefix
    google_name: str
    linear_kernel: bool = False  # HF stores Linear weights [out, in]
    required: bool = True


def _layer_norm_slots(layer: keras.layers.LayerNormalization, hf: str, google: str) -> list[_Slot]:
    return [
        _Slot(layer.gamma, f"{hf}.weight", f"{google}/gamma"),
        _Slot(layer.beta, f"{hf}.bias", f"{google}/beta"),
    ]


def _dense_slots(
    layer: keras.layers.Dense, hf: str, google: str, required: bool = True
) -> list[_Slot]:
    return [
        _Slot(layer.kernel, f"{hf}.weight", f"{google}/kernel", True, required),
        _Slot(layer.bias, f"{hf}.bias", f"{google}/bias", False, required),
    ]


def _backbone_slots(backbone: BertBackbone) -> Iterator[_Slot]:
    emb = backbone.embeddings
    yield _Slot(
        emb.token_embedding.embeddings,
        "embeddings.word_embeddings.weight",
        "bert/embeddings/word_embeddings",
    )
    yield _Slot(
        emb.segment_embedding.embeddings,
        "embeddings.token_type_embeddings.weight",
        "bert/embeddings/token_type_embeddings",
    )
    yield _Slot(
        emb.position_embedding.embeddings,
        "embeddings.position_embeddings.weight",
        "bert/embeddings/position_embeddings",
    )
    yield from _layer_norm_slots(
        emb.layer_norm, "embeddings.LayerNorm", "bert/embeddings/LayerNorm"
    )
    for i, block in enumerate(backbone.transformer_layers):
        hf, google = f"encoder.layer.{i}", f"bert/encoder/layer_{i}"
        att = block.attention
        yield from _dense_slots(
            att.query_dense, f"{hf}.attention.self.query", f"{google}/attention/self/query"
        )
        yield from _dense_slots(
            att.key_dense, f"{hf}.attention.self.key", f"{google}/attention/self/key"
        )
        yield from _dense_slots(
            att.value_dense, f"{hf}.attention.self.value", f"{google}/attention/self/value"
        )
        yield from _dense_slots(
            att.output_dense, f"{hf}.attention.output.dense", f"{google}/attention/output/dense"
        )
        yield from _layer_norm_slots(
            block.attention_layer_norm,
            f"{hf}.attention.output.LayerNorm",
            f"{google}/attention/output/LayerNorm",
        )
        yield from _dense_slots(
            block.intermediate_dense, f"{hf}.intermediate.dense", f"{google}/intermediate/dense"
        )
        yield from _dense_slots(block.output_dense, f"{hf}.output.dense", f"{google}/output/dense")
        yield from _layer_norm_slots(
            block.output_layer_norm, f"{hf}.output.LayerNorm", f"{google}/output/LayerNorm"
        )
    yield from _dense_slots(backbone.pooler, "pooler.dense", "bert/pooler/dense", required=False)


def _mlm_slots(head: BertMaskedLMHead) -> Iterator[_Slot]:
    # The decoder's weight is the token table itself (tied); only these are the head's own.
    yield from _dense_slots(
        head.transform_dense,
        "cls.predictions.transform.dense",
        "cls/predictions/transform/dense",
        required=False,
    )
    for slot in _layer_norm_slots(
        head.transform_layer_norm,
        "cls.predictions.transform.LayerNorm",
        "cls/predictions/transform/LayerNorm",
    ):
        yield _Slot(slot.variable, slot.hf_name, slot.google_name, required=False)
    yield _Slot(
        head.output_bias, "cls.predictions.bias", "cls/predictions/output_bias", required=False
    )


def _assign(
    slots: list[_Slot], lookup: Callable[[_Slot], np.ndarray | None], source: str
) -> list[str]:
    """Assign every slot from `lookup`; returns the names of optional slots that were absent."""
    missing: list[str] = []
    for slot in slots:
        value = lookup(slot)
        if value is None:
            if slot.required:
                raise KeyError(f"{source} has no weight for {slot.hf_name} / {slot.google_name}")
            missing.append(slot.hf_name)
            continue
        expected = tuple(slot.variable.shape)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"{source}: {slot.hf_name} has shape {value.shape}, the model expects {expected}"
            )
        slot.variable.assign(value.astype(np.float32))
    if missing:
        logger.info("%s: left at their initial values: %s", source, ", ".join(missing))
    return missing


def _build(
    config: BertConfig,
    with_mlm_head: bool,
    attention_mode: AttentionMode,
    condition_size: int | None = None,
    condition_hidden_units: int | None = None,
    overlap_sep_id: int | None = None,
    overlap_max_length: int | None = None,
    sentence_end_ids: Sequence[int] | None = None,
    sentence_max_count: int = DEFAULT_MAX_SENTENCE_COUNT,
    sentence_join_ids: Sequence[int] = (),
) -> tuple[BertBackbone, BertMaskedLMHead | None]:
    backbone = BertBackbone.from_bert_config(
        config,
        attention_mode=attention_mode,
        condition_size=condition_size,
        condition_hidden_units=condition_hidden_units,
        overlap_sep_id=overlap_sep_id,
        overlap_max_length=overlap_max_length,
        sentence_end_ids=sentence_end_ids,
        sentence_max_count=sentence_max_count,
        sentence_join_ids=sentence_join_ids,
    )
    head = None
    if with_mlm_head:
        head = BertMaskedLMHead(
            backbone.token_embedding,
            config.hidden_act,
            config.layer_norm_epsilon,
            condition_size,
            condition_hidden_units,
            name="mlm_head",
        )
        head.build((None, None, config.hidden_size))
    return backbone, head


def load_hf_folder(
    folder: str | Path,
    with_mlm_head: bool = False,
    attention_mode: AttentionMode = "bidirectional",
    max_length: int | None = None,
    condition_size: int | None = None,
    condition_hidden_units: int | None = None,
    overlap_sep_id: int | None = None,
    overlap_max_length: int | None = None,
    sentence_end_ids: Sequence[int] | None = None,
    sentence_max_count: int = DEFAULT_MAX_SENTENCE_COUNT,
    sentence_join_ids: Sequence[int] = (),
) -> LoadedBert:
    """Load a Hugging Face BERT folder (config.json, model.safetensors, vocab.txt).

    Args:
        folder: the checkpoint folder.
        with_mlm_head: also build the tied MLM head and load `cls.predictions.*` when present.
        attention_mode: the backbone's mask ("bidirectional", "causal", "unilm").
        max_length: the tokenizer's default longest sequence (default: the position table).
        condition_size, condition_hidden_units: make every LayerNorm conditional
            (`ConditionalLayerNorm`); the checkpoint's gamma and beta load into them and the
            condition's projections start at zero.
        overlap_sep_id: give the encoder the n-gram "exact match" feature
            (`models.bert.overlap`, this vocabulary's [SEP] id): no checkpoint holds its vector,
            which starts at zero, so the loaded model computes what the checkpoint does until
            fine-tuning moves it.
        overlap_max_length: with `overlap_sep_id`, the match-length form of the feature capped
            at this (`models.bert.overlap.match_length_overlap`; its vectors start at zero too).
        sentence_end_ids, sentence_max_count, sentence_join_ids: with `overlap_sep_id`, the
            sentence-level feature too (`models.bert.overlap.sentence_overlap`; its vectors
            start at zero too).
    """
    from safetensors.numpy import load_file

    folder = Path(folder)
    config = BertConfig.from_json_dict(
        json.loads((folder / HF_CONFIG_FILE).read_text(encoding="utf-8"))
    )
    tensors = load_file(str(folder / HF_WEIGHTS_FILE))

    def lookup(slot: _Slot) -> np.ndarray | None:
        base = slot.hf_name
        # Old conversions name LayerNorm parameters gamma/beta.
        legacy = base.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        )
        for prefix in HF_PREFIXES:
            for name in (base, legacy):
                if prefix + name in tensors:
                    value = tensors[prefix + name]
                    return value.T if slot.linear_kernel else value
        return None

    backbone, head = _build(
        config,
        with_mlm_head,
        attention_mode,
        condition_size,
        condition_hidden_units,
        overlap_sep_id,
        overlap_max_length,
        sentence_end_ids,
        sentence_max_count,
        sentence_join_ids,
    )
    slots = list(_backbone_slots(backbone)) + (list(_mlm_slots(head)) if head else [])
    missing = _assign(slots, lookup, str(folder))
    tokenizer = BertTokenizer.from_folder(folder, max_length or config.max_position)
    return LoadedBert(config, backbone, head, tokenizer, missing)


def load_tf_checkpoint(
    folder: str | Path,
    with_mlm_head: bool = False,
    attention_mode: AttentionMode = "bidirectional",
    max_length: int | None = None,
    lowercase: bool = True,
    condition_size: int | None = None,
    condition_hidden_units: int | None = None,
    overlap_sep_id: int | None = None,
    overlap_max_length: int | None = None,
    sentence_end_ids: Sequence[int] | None = None,
    sentence_max_count: int = DEFAULT_MAX_SENTENCE_COUNT,
    sentence_join_ids: Sequence[int] = (),
) -> LoadedBert:
    """Load Google's original BERT folder (bert_config.json, bert_model.ckpt.*, vocab.txt).

    Args:
        folder: the checkpoint folder (or the folder of a `bert_model.ckpt` prefix).
        with_mlm_head: also build the tied MLM head and load `cls/predictions/*` when present.
        attention_mode: the backbone's mask ("bidirectional", "causal", "unilm").
        max_length: the tokenizer's default longest sequence (default: the position table).
        lowercase: the tokenizer's lower-casing (Google's folders say it only in their name:
            "uncased_*" and Chinese ones lower-case, "cased_*" do not).
        condition_size, condition_hidden_units, overlap_sep_id, overlap_max_length,
        sentence_end_ids, sentence_max_count, sentence_join_ids: as for `load_hf_folder`.
    """
    folder = Path(folder)
    config = BertConfig.from_json_dict(
        json.loads((folder / GOOGLE_CONFIG_FILE).read_text(encoding="utf-8"))
    )
    # Google's folders hold bert_model.ckpt.* without a `checkpoint` index file; folders written
    # by tf.train.Checkpoint-style tools have one, which latest_checkpoint reads.
    prefix = folder / GOOGLE_CHECKPOINT_PREFIX
    found = tf.train.latest_checkpoint(str(folder))
    if Path(f"{prefix}.index").exists():
        checkpoint = str(prefix)
    elif found:
        checkpoint = found
    else:
        raise FileNotFoundError(f"no {GOOGLE_CHECKPOINT_PREFIX}.index or checkpoint in {folder}")
    reader = tf.train.load_checkpoint(checkpoint)
    names = set(reader.get_variable_to_shape_map())

    def lookup(slot: _Slot) -> np.ndarray | None:
        return reader.get_tensor(slot.google_name) if slot.google_name in names else None

    backbone, head = _build(
        config,
        with_mlm_head,
        attention_mode,
        condition_size,
        condition_hidden_units,
        overlap_sep_id,
        overlap_max_length,
        sentence_end_ids,
        sentence_max_count,
        sentence_join_ids,
    )
    slots = list(_backbone_slots(backbone)) + (list(_mlm_slots(head)) if head else [])
    missing = _assign(slots, lookup, checkpoint)
    tokenizer = BertTokenizer(
        folder / VOCAB_FILE, lowercase=lowercase, max_length=max_length or config.max_position
    )
    return LoadedBert(config, backbone, head, tokenizer, missing)


def hf_config_dict(config: BertConfig) -> dict[str, object]:
    """`config` as Hugging Face's config.json writes it (what `BertConfig.from_json_dict` reads)."""
    return {
        "architectures": ["BertForMaskedLM"],
        "model_type": "bert",
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position,
        "type_vocab_size": config.type_vocab_size,
        "layer_norm_eps": config.layer_norm_epsilon,
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.dropout,
        "hidden_act": config.hidden_act,
    }


def save_hf_folder(
    folder: str | Path,
    backbone: BertBackbone,
    mlm_head: BertMaskedLMHead,
    vocab_path: str | Path,
    lowercase: bool = True,
) -> list[str]:
    """Write a BERT and its MLM head as a Hugging Face folder (config.json, model.safetensors with
    BertForMaskedLM's names, vocab.txt, tokenizer_config.json): what `load_hf_folder`, and so
    `--init-checkpoint`, read back, and what `transformers.BertForMaskedLM.from_pretrained` reads.

    Returns:
        The files written.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    for slot in [*_backbone_slots(backbone), *_mlm_slots(mlm_head)]:
        value = np.asarray(slot.variable.numpy(), dtype=np.float32)
        tensors["bert." * (not slot.hf_name.startswith("cls.")) + slot.hf_name] = (
            np.ascontiguousarray(value.T if slot.linear_kernel else value)
        )
    save_file(tensors, str(folder / HF_WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / HF_CONFIG_FILE).write_text(
        json.dumps(hf_config_dict(backbone.config), indent=2) + "\n", encoding="utf-8"
    )
    (folder / TOKENIZER_CONFIG_FILE).write_text(
        json.dumps({"do_lower_case": lowercase, "tokenizer_class": "BertTokenizer"}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    vocab = Path(vocab_path).read_bytes()
    (folder / VOCAB_FILE).write_bytes(vocab)
    return [HF_CONFIG_FILE, HF_WEIGHTS_FILE, VOCAB_FILE, TOKENIZER_CONFIG_FILE]
