"""What the QA step benchmarks share (`bench/qa_overlap_step.py`, `bench/qa_batch_step.py`): the
demo's own training samples, batches of alike lengths padded as the job pads them, and one
XLA-compiled training step of a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def demo_samples(count: int) -> tuple[Any, list[Any]]:
    """The tokenizer and training samples (one a passage) of `count` demo mixture questions,
    sorted by length; the character vocabulary is written to a temporary file and removed."""
    from models.bert.tokenizer import BertTokenizer
    from models.qa.samples import build_sample
    from models.qa.synthetic import make_mixed_examples
    from training.common.text import build_char_vocab, write_vocab
    from training.qa import (
        DEMO_MAX_ANSWER_TOKENS,
        DEMO_MAX_PASSAGE_TOKENS,
        DEMO_MAX_QUESTION_TOKENS,
        DEMO_MIXTURE,
        _example_texts,
    )

    examples = make_mixed_examples(count, 0, DEMO_MIXTURE)
    vocab_path = Path("/tmp") / f"qa_step_vocab_{os.getpid()}.txt"
    write_vocab(vocab_path, build_char_vocab(_example_texts(examples), 1))
    tokenizer = BertTokenizer(vocab_path, lowercase=True)
    vocab_path.unlink()
    limits = (DEMO_MAX_PASSAGE_TOKENS, DEMO_MAX_QUESTION_TOKENS, DEMO_MAX_ANSWER_TOKENS)
    samples = [
        build_sample(tokenizer, p.text, e.question, p.answer, *limits)
        for e in examples
        for p in e.passages
    ]
    samples.sort(key=lambda s: len(s.token_ids))
    return tokenizer, samples


def width_batches(samples: list[Any], size: int, pad_id: int) -> list[dict]:
    """Batches of `size` consecutive (length-sorted) samples at the job's widths (x 32)."""
    from models.qa.samples import pad_samples

    batches = []
    for start in range(0, len(samples) - size + 1, size):
        rows = samples[start : start + size]
        width = -(-max(len(r.token_ids) for r in rows) // 32) * 32
        batches.append(pad_samples(rows, pad_id, pad_to=width))
    return batches


def jit_train_step(model: Any) -> Any:
    """One XLA-compiled training step of the demo's loss with AdamW, as the job takes it."""
    import tensorflow as tf

    from models.qa.seq2seq import answer_window_loss
    from training.common.loop import bert_adamw
    from training.qa import DEMO_MAX_ANSWER_TOKENS

    optimizer, _ = bert_adamw(1e-3, 10_000)

    def step(inputs: dict) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = answer_window_loss(model, inputs, DEMO_MAX_ANSWER_TOKENS + 1, True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return tf.function(step, jit_compile=True, reduce_retracing=True)
