"""QA decoding speed with the key/value cache vs without it, same answers, side by side.

Greedy decoding of a fixed number of answer tokens (no early [SEP], so that every run does the
same work) from `[CLS] passage [SEP] question [SEP]` prefixes of `--passage-tokens` +
`--question-tokens`, for a batch of `--rows` rows (passages x beams), on random-weight models of
two shapes: "small" (the from-scratch QA model, `small_qa_config`, character vocabulary) and
"minilm" (all-MiniLM-L6-v2's shape with a Chinese BERT vocabulary).

Three ways to get the next token's log-probabilities:

- cache: `prefill` once, then `step` one token per row (what the SavedModel exports);
- no cache: the encoder over the whole `prefix + answer so far`, the MLM head at the last
  position only (the strongest decoder without a cache);
- full_logits: the no-cache reference signature (the head at every position).

All three are `tf.function`s with shape-relaxed signatures (no retracing as the sequence grows),
not XLA-compiled (as exported). Each is run once to warm up, then timed `--repeats` times; the
table shows the best time per decoded answer batch and the ratio to the cache. Answers must be
identical token for token (the "same" column).

Run from the repository root:

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m bench.qa_cache
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m bench.qa_cache --shapes small --rows 1 4 16
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import keras
import numpy as np
import tensorflow as tf

from models.bert.bert_backbone import BertConfig, build_attention_mask
from models.qa.kv_cache import KerasStepModel
from models.qa.samples import max_sample_length
from models.qa.seq2seq import UniLMSeq2Seq, build_qa_model, small_qa_config

# Token ids every BERT vocabulary of this project starts with ([PAD] [UNK] [CLS] [SEP] [MASK]).
CLS_ID, SEP_ID = 2, 3
FIRST_ORDINARY_ID = 5
# Vocabulary sizes: a character vocabulary built from Chinese QA data (about 5k characters),
# and Google's Chinese BERT (bert-base-chinese) vocabulary.
SMALL_VOCAB_SIZE = 5000
CHINESE_BERT_VOCAB_SIZE = 21128


def shape_config(name: str, max_position: int) -> BertConfig:
    if name == "small":
        return small_qa_config(SMALL_VOCAB_SIZE, max_position)
    if name == "minilm":
        # all-MiniLM-L6-v2: 6 layers, 384 wide, 12 heads, 1536 feed-forward.
        return BertConfig(
            vocab_size=CHINESE_BERT_VOCAB_SIZE,
            hidden_size=384,
            num_layers=6,
            num_heads=12,
            intermediate_size=1536,
            max_position=max_position,
        )
    raise ValueError(f"unknown shape {name!r}")


@dataclass
class Timing:
    seconds: float
    answers: np.ndarray


def decode_cached(step_model: KerasStepModel, prefixes: np.ndarray, tokens: int) -> np.ndarray:
    lengths = np.full(len(prefixes), prefixes.shape[1], np.int32)
    log_probs, cache = step_model.prefill(prefixes, lengths)
    answers = []
    for k in range(tokens):
        chosen = no_sep_argmax(log_probs)
        answers.append(chosen)
        if k + 1 < tokens:
            log_probs, cache = step_model.step(chosen, lengths + k, cache)
    return np.stack(answers, axis=1)


def decode_recomputing(
    next_log_probs: Callable[[np.ndarray, np.ndarray], np.ndarray],
    prefixes: np.ndarray,
    tokens: int,
) -> np.ndarray:
    sequences = prefixes
    segments = np.zeros_like(prefixes)
    answers = []
    for _ in range(tokens):
        chosen = no_sep_argmax(next_log_probs(sequences, segments))
        answers.append(chosen)
        sequences = np.concatenate([sequences, chosen[:, None]], axis=1)
        segments = np.concatenate([segments, np.ones_like(chosen)[:, None]], axis=1)
    return np.stack(answers, axis=1)


def no_sep_argmax(log_probs: np.ndarray) -> np.ndarray:
    masked = np.array(log_probs, copy=True)
    masked[:, SEP_ID] = -np.inf
    return masked.argmax(-1).astype(np.int32)


def last_position_function(model: UniLMSeq2Seq) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec])
    def last(token_ids: tf.Tensor, segment_ids: tf.Tensor) -> tf.Tensor:
        padding = tf.ones_like(token_ids)
        mask = build_attention_mask(padding, segment_ids, "unilm")
        states = model.backbone.encode(token_ids, segment_ids, mask, training=False)
        return tf.nn.log_softmax(model.mlm_head(states[:, -1:, :])[:, 0, :], axis=-1)

    return lambda ids, segments: last(ids, segments).numpy()


def best_of(run: Callable[[], np.ndarray], repeats: int) -> Timing:
    answers = run()  # warm-up: traces the tf.functions
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        again = run()
        times.append(time.perf_counter() - start)
        if not np.array_equal(again, answers):
            raise AssertionError("the same decoder gave different answers on a second run")
    return Timing(min(times), answers)


def measure(model: UniLMSeq2Seq, prefixes: np.ndarray, args: argparse.Namespace) -> str:
    """One table row's cells after the shape and row count."""
    step_model = KerasStepModel(model, args.answer_tokens)
    last = last_position_function(model)

    def full(ids: np.ndarray, segments: np.ndarray) -> np.ndarray:
        return step_model.full_logits(ids, np.ones_like(ids), segment_ids=segments)[:, -1, :]

    tokens = args.answer_tokens
    cached = best_of(partial(decode_cached, step_model, prefixes, tokens), args.repeats)
    uncached = best_of(partial(decode_recomputing, last, prefixes, tokens), args.repeats)
    same = np.array_equal(cached.answers, uncached.answers)
    cells = f"{cached.seconds:>8.3f} {uncached.seconds:>10.3f} "
    cells += f"{uncached.seconds / cached.seconds:>6.1f} "
    if args.skip_full_logits:
        cells += f"{'-':>13} {'-':>6} "
    else:
        reference = best_of(partial(decode_recomputing, full, prefixes, tokens), args.repeats)
        same = same and np.array_equal(cached.answers, reference.answers)
        cells += f"{reference.seconds:>13.3f} {reference.seconds / cached.seconds:>6.1f} "
    return cells + f"{'yes' if same else 'NO':>5}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["small", "minilm"])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--passage-tokens", type=int, default=256)
    parser.add_argument("--question-tokens", type=int, default=16)
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip-full-logits", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    prefix_length = args.passage_tokens + args.question_tokens + 3
    max_position = max_sample_length(args.passage_tokens, args.question_tokens, args.answer_tokens)
    rng = np.random.default_rng(args.seed)
    print(
        f"prefix {prefix_length} tokens, {args.answer_tokens} answer tokens, greedy, "
        f"best of {args.repeats}; ratio = time without cache / time with cache"
    )
    print(
        f"{'shape':>7} {'rows':>4} {'cache s':>8} {'no-cache s':>10} {'ratio':>6} "
        f"{'full_logits s':>13} {'ratio':>6} {'same':>5}"
    )
    for shape in args.shapes:
        keras.utils.set_random_seed(args.seed)
        config = shape_config(shape, max_position)
        model = build_qa_model(config)
        for rows in args.rows:
            body = rng.integers(FIRST_ORDINARY_ID, config.vocab_size, (rows, prefix_length))
            body[:, 0] = CLS_ID
            body[:, args.passage_tokens + 1] = SEP_ID
            body[:, -1] = SEP_ID
            cells = measure(model, body.astype(np.int32), args)
            print(f"{shape:>7} {rows:>4} {cells}", flush=True)


if __name__ == "__main__":
    main()
