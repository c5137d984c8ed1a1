"""Export a pretrained BERT encoder into the model store as a sentence-embedding model.

    python -m training.bert --checkpoint path/to/all-MiniLM-L6-v2 --out model_store --name minilm

Reads a Hugging Face folder (config.json + model.safetensors + vocab.txt) or Google's TF
checkpoint folder (bert_config.json + bert_model.ckpt.* + vocab.txt), and writes a version whose
SavedModel maps WordPiece ids to mean-pooled sentence vectors (`models.bert.export`), served by
/v1/embeddings through `service.runtimes.bert`. No training happens: the version's
metrics are the check that the written SavedModel gives the in-process Keras model's vectors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from models.bert.checkpoint import (
    GOOGLE_CHECKPOINT_PREFIX,
    GOOGLE_CONFIG_FILE,
    HF_CONFIG_FILE,
    HF_WEIGHTS_FILE,
    LoadedBert,
    load_hf_folder,
    load_tf_checkpoint,
)
from models.bert.encoder_signatures import (
    EMBEDDING_KEY,
    POOLING_MODES,
    SIGNATURE_EMBED,
    VOCAB_ASSET_PATH,
)
from models.bert.export import export_embedding_saved_model
from models.bert.pooling import masked_mean_pool
from models.bert.tokenizer import VOCAB_FILE, BertTokenizer
from models.store import validate_model_name
from training.common.cli import DEFAULT_STORE, positive_int
from training.common.export import export_version

log = logging.getLogger("training.bert")

FORMAT_HF = "huggingface"
FORMAT_GOOGLE = "google"
# sentence-transformers keeps the longest sequence its model was meant for here
# (256 for all-MiniLM-L6-v2, which was trained on 128); it is the default --max-length.
SENTENCE_TRANSFORMERS_CONFIG = "sentence_bert_config.json"
# Largest |SavedModel - Keras| difference on the probe texts before the export is refused:
# float32 XLA fusions reorder sums, which moves results by ~1e-6, never by 1e-4.
EXPORT_TOLERANCE = 1e-4
# Texts the written SavedModel is checked on (Latin script, CJK, accents, punctuation).
PROBE_TEXTS = (
    "The quick brown fox jumps over the lazy dog.",
    "我爱自然语言处理。",
    "Café au lait costs €3.50 in Zürich.",
    "Hello",
)
_HASH_CHUNK = 1 << 20


def checkpoint_format(folder: Path) -> str:
    """`huggingface` or `google`, from the files in `folder`; ValueError if neither."""
    if (folder / HF_CONFIG_FILE).is_file() and (folder / HF_WEIGHTS_FILE).is_file():
        return FORMAT_HF
    if (folder / GOOGLE_CONFIG_FILE).is_file():
        return FORMAT_GOOGLE
    raise ValueError(
        f"{folder} is neither a Hugging Face folder ({HF_CONFIG_FILE} + {HF_WEIGHTS_FILE}) "
        f"nor a Google BERT folder ({GOOGLE_CONFIG_FILE} + {GOOGLE_CHECKPOINT_PREFIX}.*)"
    )


def weight_files(folder: Path, fmt: str) -> list[Path]:
    """The files holding the weights (hashed into the manifest), in a fixed order."""
    if fmt == FORMAT_HF:
        return [folder / HF_WEIGHTS_FILE]
    return sorted(folder.glob(f"{GOOGLE_CHECKPOINT_PREFIX}.*"))


def files_sha256(paths: list[Path]) -> str:
    """SHA-256 of the files' bytes one after another (for one file, what `sha256sum` prints)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def default_lowercase(folder: Path) -> bool:
    # Google's folders say their casing only in their name: "cased_L-12_H-768_A-12" keeps case,
    # "uncased_*", "multilingual_L-12..." (uncased) and "chinese_*" lower-case.
    name = folder.resolve().name.lower()
    return not (name.startswith("cased") or "_cased" in name)


def default_max_length(folder: Path, max_position: int) -> int:
    config = folder / SENTENCE_TRANSFORMERS_CONFIG
    if config.is_file():
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
        if isinstance(value, int) and value > 0:
            return min(value, max_position)
    return max_position


def load_checkpoint(folder: Path, fmt: str, lowercase: bool | None) -> LoadedBert:
    if fmt == FORMAT_HF:
        loaded = load_hf_folder(folder)
        if lowercase is not None and lowercase != loaded.tokenizer.lowercase:
            # An explicit --lowercase/--no-lowercase wins over tokenizer_config.json.
            loaded.tokenizer = BertTokenizer(
                folder / VOCAB_FILE, lowercase, None, loaded.tokenizer.max_length
            )
        return loaded
    return load_tf_checkpoint(
        folder, lowercase=default_lowercase(folder) if lowercase is None else lowercase
    )


def keras_embeddings(loaded: LoadedBert, texts: tuple[str, ...], max_length: int) -> np.ndarray:
    """Mean-pooled vectors of `texts` from the in-process Keras encoder (the reference)."""
    batch = loaded.tokenizer.encode_batch(list(texts), max_length=max_length)
    states = loaded.backbone(batch.as_inputs(), training=False)["sequence_output"]
    return np.asarray(masked_mean_pool(states, batch.padding_mask))


def saved_model_embeddings(
    path: Path, loaded: LoadedBert, texts: tuple[str, ...], max_length: int
) -> np.ndarray:
    import tensorflow as tf

    batch = loaded.tokenizer.encode_batch(list(texts), max_length=max_length)
    embed = tf.saved_model.load(str(path)).signatures[SIGNATURE_EMBED]
    return np.asarray(embed(**batch.as_inputs())[EMBEDDING_KEY])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.bert",
        description="Export a BERT checkpoint as a mean-pooled sentence-embedding model.",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="Hugging Face folder (config.json, model.safetensors, vocab.txt) or Google's "
        "(bert_config.json, bert_model.ckpt.*, vocab.txt)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("MODEL_STORE", DEFAULT_STORE)),
        help="model store to export into (default: $MODEL_STORE or ./model_store)",
    )
    parser.add_argument("--name", type=validate_model_name, required=True, help="model name")
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="longest input in tokens, [CLS] and [SEP] included; longer texts are refused "
        f"(default: {SENTENCE_TRANSFORMERS_CONFIG}'s max_seq_length, else the position table)",
    )
    parser.add_argument(
        "--pooling", choices=POOLING_MODES, default="mean", help="token states -> one vector"
    )
    parser.add_argument(
        "--lowercase",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lower-case text before WordPiece (default: tokenizer_config.json for Hugging "
        "Face folders; for Google's, true unless the folder's name starts with 'cased')",
    )
    parser.add_argument(
        "--no-jit",
        action="store_true",
        help="export plain tf.functions instead of XLA-compiled ones (for TensorFlow Serving "
        "started without --xla_cpu_compilation_enabled)",
    )
    return parser


def main(argv: list[str] | None = None) -> Path:
    """Runs the export; returns the new version's folder."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # TensorFlow's and absl's Python loggers narrate every SavedModel export at INFO ("Assets
    # written to ...", "Function ... unsupported characters"): the job's own lines say what matters.
    for noisy in ("absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    folder: Path = args.checkpoint
    fmt = checkpoint_format(folder)

    started = time.monotonic()
    log.info("loading %s checkpoint %s", fmt, folder)
    loaded = load_checkpoint(folder, fmt, args.lowercase)
    config = loaded.config
    max_length = args.max_length or default_max_length(folder, config.max_position)
    if not 2 < max_length <= config.max_position:
        raise SystemExit(
            f"--max-length must be in 3..{config.max_position} (the position table), "
            f"got {max_length}"
        )
    log.info(
        "loaded %d layers, width %d, vocabulary %d in %.1f s",
        config.num_layers,
        config.hidden_size,
        config.vocab_size,
        time.monotonic() - started,
    )
    weights = weight_files(folder, fmt)
    reference = keras_embeddings(loaded, PROBE_TEXTS, max_length)
    # Filled by write_model, which runs before export_version writes the manifest.
    metrics: dict[str, Any] = {}

    def write_model(path: Path) -> list[str]:
        log.info("writing the SavedModel (jit_compile=%s)", not args.no_jit)
        signatures = export_embedding_saved_model(
            path, loaded.backbone, folder / VOCAB_FILE, jit_compile=not args.no_jit
        )
        log.info("checking the SavedModel against the Keras encoder on %d texts", len(PROBE_TEXTS))
        served = saved_model_embeddings(path, loaded, PROBE_TEXTS, max_length)
        error = float(np.abs(served - reference).max())
        if not error <= EXPORT_TOLERANCE:  # also catches NaN
            raise RuntimeError(
                f"the SavedModel's embeddings differ from the Keras encoder's by {error:.3g} "
                f"(tolerance {EXPORT_TOLERANCE})"
            )
        metrics.update(saved_model_max_abs_error=error, probe_texts=len(PROBE_TEXTS))
        return signatures

    tokenizer = loaded.tokenizer
    final = export_version(
        args.out,
        args.name,
        task="embedding",
        family="bert",
        write_model=write_model,
        config={
            "checkpoint": str(folder.resolve()),
            "format": fmt,
            "bert": asdict(config),
            "max_length": max_length,
            "pooling": args.pooling,
            "jit_compile": not args.no_jit,
        },
        data={
            "checkpoint": str(folder.resolve()),
            "weights": [p.name for p in weights],
            "sha256": files_sha256(weights),
            "missing_weights": loaded.missing,
        },
        metrics=metrics,
        extra={
            "dim": config.hidden_size,
            "tokenizer": {
                "kind": "wordpiece",
                "lowercase": tokenizer.lowercase,
                "strip_accents": tokenizer.strip_accents,
                "vocab": VOCAB_ASSET_PATH,
            },
            "max_seq_len": max_length,
            "pooling": args.pooling,
        },
    )
    log.info("wrote %s in %.1f s", final, time.monotonic() - started)
    return final


if __name__ == "__main__":
    main()
