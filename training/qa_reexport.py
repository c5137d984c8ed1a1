"""Export a QA version again with this release's signatures, as a new version of the same model.

    python -m training.qa_reexport --model model_store/demo-qa/1

Versions exported before answers carried evidence have no attention output in `prefill` and
`step` (`models.qa.signatures`), so the service refuses `return_evidence` for them. The weights
are all there: this reads them back from the old SavedModel into a fresh model of the shape its
manifest records (`config.bert`, which `training.qa` writes), exports them with the current
`models.qa.export`, and writes the next version of the model with the old manifest's config,
data, metrics and limits (`config.reexported_from` names the old version). Nothing is trained;
answers are the same. The old version is left as it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

from models.bert.bert_backbone import BertConfig
from models.data_errors import DataError
from models.qa.export import export_qa_saved_model
from models.qa.seq2seq import build_qa_model
from models.store import MANIFEST_FILENAME, QAManifest, read_manifest
from training.common import export_version
from training.common.cli import model_name
from training.common.export import check_store


def reexport_qa(version_dir: str | os.PathLike[str], name: str | None = None) -> Path:
    """Writes the weights of an exported QA version as a new version with the current export.

    Args:
        version_dir: `<store>/<model>/<version>` of a QA model whose manifest has `config.bert`.
        name: the model to write the new version of (default: the same model).

    Returns:
        The new version folder.

    Raises:
        DataError: no version folder, not a QA model, or `name` holds another task's versions.
        ValueError: its manifest does not record its shape.
    """
    folder = Path(version_dir)
    if not (folder / MANIFEST_FILENAME).is_file():
        raise DataError(
            f"{folder}: no {MANIFEST_FILENAME}; --model is a version folder, "
            "<store>/<model>/<version>"
        )
    manifest = read_manifest(folder)
    if not isinstance(manifest, QAManifest):
        raise DataError(f"{folder} is not a QA model ({manifest.task}/{manifest.family})")
    # The new version's model may hold no versions of another task (as for a training job).
    check_store(folder.parent.parent, name or manifest.name, "qa")
    shape = manifest.config.get("bert")
    if not isinstance(shape, dict):
        raise ValueError(
            f"{folder}/manifest.json has no config.bert (the encoder's shape): this version "
            "cannot be exported again; train a new version"
        )
    fields = {f.name for f in dataclasses.fields(BertConfig)}
    # Versions trained with the exact-match feature (`--overlap-feature`) record its [SEP] id.
    # and those with the match-length feature (`--overlap-feature ngram`) its cap (the option
    # is recorded for every run: only an ngram run's counts).
    overlap_sep_id = manifest.config.get("overlap_sep_id")
    ngram = manifest.config.get("overlap_feature") == "ngram"
    overlap_max_length = manifest.config.get("overlap_max_length") if ngram else None
    # And those with the sentence-level feature (`--sentence-feature`) its end ids and cap (and
    # the ids that join a sentence to the one before, `--sentence-join`, when set).
    sentence: dict[str, Any] = {}
    if manifest.config.get("sentence_end_ids") is not None:
        sentence = {
            "sentence_end_ids": [int(i) for i in manifest.config["sentence_end_ids"]],
            "sentence_max_count": int(manifest.config["sentence_max_count"]),
            "sentence_join_ids": [int(i) for i in manifest.config.get("sentence_join_ids", [])],
        }
    model = build_qa_model(
        BertConfig(**{k: v for k, v in shape.items() if k in fields}),
        overlap_sep_id=None if overlap_sep_id is None else int(overlap_sep_id),
        overlap_max_length=None if overlap_max_length is None else int(overlap_max_length),
        copy_attention=bool(manifest.config.get("copy_attention", False)),
        **sentence,
    )
    status = tf.train.Checkpoint(model=model).read(os.fspath(folder / "variables" / "variables"))
    # Every weight of the fresh model must come from the old version.
    status.assert_existing_objects_matched()
    vocab = folder / manifest.tokenizer.vocab
    config = {**manifest.config, "reexported_from": {"name": manifest.name,
                                                      "version": manifest.version}}  # fmt: skip
    as_written = manifest.as_json()
    kept = ("max_passage_tokens", "max_question_tokens", "max_answer_tokens", "tokenizer")
    # "placeholders": a version trained with them reads unknown words as them
    # (`models.qa.placeholders`); lost, it would read [UNK] where it was trained on placeholders.
    extra = {
        key: as_written[key] for key in (*kept, "decoding", "placeholders") if key in as_written
    }
    return export_version(
        folder.parent.parent,
        name or manifest.name,
        task="qa",
        family="bert-unilm",
        write_model=lambda path: export_qa_saved_model(
            path,
            model,
            vocab,
            manifest.max_passage_tokens,
            manifest.max_question_tokens,
            manifest.max_answer_tokens,
        ),
        config=config,
        data=manifest.data,
        metrics=manifest.metrics,
        extra=extra,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.qa_reexport", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="the version folder: <store>/<model>/<version>"
    )
    parser.add_argument(
        "--name", type=model_name, default=None, help="write it as this model (default: same)"
    )
    args = parser.parse_args(argv)
    try:
        print(reexport_qa(args.model, args.name))
    except DataError as error:  # as the training jobs do (training.common.job.Job.main)
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
