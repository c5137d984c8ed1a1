"""Evaluate a conditional LM: per-label perplexity, label fidelity of its samples, distinct-n.

    python -m training.generation_eval --model model_store/cln-zh/1 --train train.tsv \\
        --valid valid.tsv [--samples-per-label 200] [--temperature 1] [--top-k 0] [--top-p 0.9] \\
        [--samples-out samples.json]

* Perplexity: exp of the mean cross-entropy per predicted token (every token after [CLS], the
  closing [SEP] included) of the held-out texts of each label, under that label.
* Label fidelity: a classifier trained on the labelled training texts (TF-IDF of character
  1-3-grams, logistic regression; its accuracy on --valid is reported beside it) reads the samples;
  fidelity is the share classified as the label they were asked for.
* distinct-n (Li et al., "A Diversity-Promoting Objective Function for Neural Conversation
  Models", NAACL 2016): distinct n-grams / all n-grams over every sample's characters.

Prints the metrics as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.bert.tokenizer import BertTokenizer
from models.generation.data import (
    ConditionalText,
    LMSample,
    build_samples,
    pad_lm_samples,
    read_conditional_texts,
)
from models.generation.decoding import generate, label_guidance, make_rows, row_text
from models.generation.sampling import SamplingParams
from models.store import GenerationManifest, read_manifest
from training.common.cli import (
    non_negative_float,
    non_negative_int,
    positive_fraction,
    positive_int,
)
from training.common.text import pad_width

EVAL_BATCH_SIZE = 64
DEFAULT_SAMPLES_PER_LABEL = 200


class ScoringModel(Protocol):
    def label_condition(self, label_ids: Any) -> np.ndarray: ...

    def full_logits(self, token_ids: Any, padding_mask: Any, condition: Any) -> np.ndarray: ...


def perplexity_by_label(
    model: ScoringModel, samples: Sequence[LMSample], labels: Sequence[str], pad_id: int
) -> dict[str, float]:
    """{label: perplexity of its samples}, each under its own label."""
    nll = np.zeros(len(labels))
    count = np.zeros(len(labels))
    for start in range(0, len(samples), EVAL_BATCH_SIZE):
        chunk = samples[start : start + EVAL_BATCH_SIZE]
        batch = pad_lm_samples(chunk, pad_id, pad_width(len(s.token_ids) for s in chunk), False)
        condition = model.label_condition(batch["label_ids"])
        log_probs = model.full_logits(batch["token_ids"], batch["padding_mask"], condition)
        targets = batch["token_ids"][:, 1:]
        picked = np.take_along_axis(log_probs[:, :-1], targets[..., None], axis=-1)[..., 0]
        mask = batch["loss_mask"][:, 1:]
        np.add.at(nll, batch["label_ids"], -(picked * mask).sum(axis=1))
        np.add.at(count, batch["label_ids"], mask.sum(axis=1))
    return {
        name: float(math.exp(nll[i] / count[i])) if count[i] else float("nan")
        for i, name in enumerate(labels)
    }


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct character n-grams / all character n-grams over the texts."""
    grams = [text[i : i + n] for text in texts for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def train_label_classifier(texts: Sequence[ConditionalText]) -> Any:
    """TF-IDF (character 1-3-grams) + logistic regression on labelled texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    classifier = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2),
        LogisticRegression(C=4.0, max_iter=2000),
    )
    classifier.fit([t.text for t in texts], [t.label for t in texts])
    return classifier


def sample_texts(
    model: Any,
    tokenizer: BertTokenizer,
    labels: Sequence[str],
    per_label: int,
    params: SamplingParams,
    max_new_tokens: int,
    seed: int,
    guidance_scale: float = 0.0,
) -> dict[str, list[str]]:
    """`per_label` samples of each label, drawn in batches as a server would (guided away from
    the other labels by `guidance_scale` when it is not 0)."""
    conditions = model.label_condition(list(range(len(labels))))
    rows = []
    for i, _ in enumerate(labels):
        guidance = label_guidance(conditions, i, guidance_scale) if guidance_scale else None
        rows.append(
            make_rows(tokenizer, conditions[i], per_label, max_new_tokens, params, seed + i,
                      guidance=guidance)
        )  # fmt: skip
    generate(model, tokenizer, [row for group in rows for row in group])
    pairs = zip(labels, rows, strict=True)
    return {name: [row_text(tokenizer, r) for r in group] for name, group in pairs}


def evaluate_generation(
    model: Any,
    tokenizer: BertTokenizer,
    labels: Sequence[str],
    train_texts: Sequence[ConditionalText],
    valid_texts: Sequence[ConditionalText],
    max_length: int,
    samples_per_label: int,
    params: SamplingParams,
    seed: int = 0,
    guidance_scale: float = 0.0,
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """All the metrics of the module's docstring, and the samples."""
    metrics: dict[str, Any] = {}
    valid = build_samples(tokenizer, valid_texts, max_length, labels)
    metrics["perplexity"] = perplexity_by_label(model, valid, labels, tokenizer.pad_id)
    samples = sample_texts(
        model, tokenizer, labels, samples_per_label, params, max_length - 1, seed, guidance_scale
    )
    classifier = train_label_classifier(train_texts)
    metrics["classifier_valid_accuracy"] = float(
        np.mean(classifier.predict([t.text for t in valid_texts]) == [t.label for t in valid_texts])
    )
    fidelity = {}
    for name, texts in samples.items():
        predicted = classifier.predict([t if t else " " for t in texts])
        fidelity[name] = float(np.mean(predicted == name))
    metrics["label_fidelity"] = fidelity
    metrics["label_fidelity_mean"] = float(np.mean(list(fidelity.values())))
    everything = [t for texts in samples.values() for t in texts]
    metrics["distinct_1"] = distinct_n(everything, 1)
    metrics["distinct_2"] = distinct_n(everything, 2)
    metrics["mean_sample_chars"] = float(np.mean([len(t) for t in everything]))
    metrics["samples_per_label"] = samples_per_label
    metrics["sampling"] = {"temperature": params.temperature, "top_k": params.top_k,
                           "top_p": params.top_p, "guidance_scale": guidance_scale}  # fmt: skip
    return metrics, samples


def main(argv: Sequence[str] | None = None) -> None:
    from models.bert.lm_reader import SavedModelLMStepModel as SavedModelGenerationStepModel

    p = argparse.ArgumentParser(prog="python -m training.generation_eval", description=__doc__)
    p.add_argument("--model", type=Path, required=True, help="an exported version folder")
    p.add_argument("--train", type=Path, required=True, help="labelled texts for the classifier")
    p.add_argument("--valid", type=Path, required=True, help="held-out labelled texts")
    p.add_argument("--samples-per-label", type=positive_int, default=DEFAULT_SAMPLES_PER_LABEL)
    p.add_argument("--temperature", type=non_negative_float, default=1.0)
    p.add_argument("--top-k", type=non_negative_int, default=0, help="0: no top-k")
    p.add_argument("--top-p", type=positive_fraction, default=1.0, help="1: no nucleus filtering")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument(
        "--guidance-scale",
        type=non_negative_float,
        default=0.0,
        help="guide away from the other labels",
    )
    p.add_argument("--samples-out", type=Path, default=None, help="write the samples as JSON")
    args = p.parse_args(argv)

    manifest = read_manifest(args.model, GenerationManifest)
    labels = manifest.labels
    if not labels:
        sys.exit("label fidelity needs a label-conditioned model")
    model = SavedModelGenerationStepModel(args.model)
    spec = manifest.tokenizer
    tokenizer = BertTokenizer(args.model / spec.vocab, spec.lowercase, spec.strip_accents)
    params = SamplingParams(args.temperature, args.top_k or None, args.top_p)
    metrics, samples = evaluate_generation(
        model,
        tokenizer,
        labels,
        read_conditional_texts(args.train),
        read_conditional_texts(args.valid),
        manifest.max_length,
        args.samples_per_label,
        params,
        args.seed,
        args.guidance_scale,
    )
    if args.samples_out is not None:
        args.samples_out.write_text(
            json.dumps(samples, ensure_ascii=False, indent=1), encoding="utf-8"
        )
    print(json.dumps(metrics, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
