"""Held-out exact match of a demo-style QA model on the hard synthetic questions, with its errors.

    .venv/bin/python bench/qa_demo_heldout.py --model model_store/demo-qa/1 [--count 1000] \\
        [--seed 1001] \\
        [--set hard|wording|pronoun|two-people|own-words|own-names|own-values|noise] \\
        [--examples] [--span-search [--length-penalty 1]]

The questions are `training.qa.DEMO_HELDOUT_SYNTHETIC`: passages about one to three people, other
people often stating the asked fact too and often sharing a surname or given name with the person
asked, 30% unanswerable (half of those about someone no passage names), 1-3 passages, and about
a quarter of the questions in wordings training never used (`Attribute.held_out_questions`). The
seed is not one training draws from (training uses `--seed`, its own held-out set `--seed` + 1).

Decodes as the service does (the SavedModel's cache signatures, the manifest's beam size and
extractive setting) and prints JSON: exact match overall, per kind of question and per wording,
and the errors counted by kind (`models.qa.synthetic.error_breakdown`). `--examples` also answers
the example requests of issue 18 and the hand-written ordinary-user requests
(`training.qa.USER_EXAMPLES`) and the probe's facts stated by a pronoun
(`training.qa.PRONOUN_EXAMPLES`) and users' own names and values (`training.qa.OWN_EXAMPLES`)
and passages with distractor text (`training.qa.NOISE_EXAMPLES`) and prints them, with how many
of each are right.

`--set wording` draws the questions from `training.qa.DEMO_WORDING_HELDOUT_SYNTHETIC` instead:
the same hard kind in ordinary wording (compound sentences, several statement forms, some held
out of training, a wider pool of values and values training never sees, sentences without their
value); the report then also has exact match over the answers stated only in held-out forms
(`em_held_out_statement`), in compound sentences (`em_compound`), with held-out values
(`em_held_out_value`) and over the questions with a value-less sentence (`em_empty_value`).

`--set pronoun` draws them from `training.qa.DEMO_PRONOUN_HELDOUT_SYNTHETIC`: the wording set with
60% of people (with two facts or more) stating a run of their facts by 他/她 after the named first
one ("张伟住在北京。他今年35岁。"); `em_pronoun` is exact match over the answers so stated.

`--set two-people` draws them from `training.qa.DEMO_TWO_PEOPLE_HELDOUT_SYNTHETIC`: one passage
about two people with one fact each, the other person always stating the fact asked, half the
questions about a person named without it ("王芳今年多大？" over "张伟今年35岁。王芳是一名护士。":
no answer; `em_unstated`), half about one who states it.

`--set own-words` draws them from `training.qa.DEMO_OWN_WORDS_HELDOUT_SYNTHETIC`: the hard set
about users' own people and values: names of common characters no training name holds, values
typed by hand that no pool holds (乌鲁木齐, 柯基犬; `em_own_value` over the answered ones,
`em_wide_name` over the questions about such a name). `--set own-names` and `--set own-values`
take one side at a time: held-out names with the pools' values, the pools' names with own values.

`--set noise` draws them from `training.qa.DEMO_NOISE_HELDOUT_SYNTHETIC`: the hard set's questions
and answers (the same seed, the same draws) with distractor text in every passage (note markers
"[注1]", IDs "ID: A123。", Latin sentences, "[SEP]"-like text, numbers) and, for a quarter of them,
one more passage of nothing else; the difference from `--set hard` at the same seed and count is
what the distractors cost.

`--span-search` decodes every question (and the examples) with the span search the service offers
(`span_search` on /v1/qa; `--length-penalty` as there) instead of the manifest's decoding.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from models.bert.tokenizer import BertTokenizer  # noqa: E402
from models.qa.decoding import answer_questions  # noqa: E402
from models.qa.sentences import READ_BY  # noqa: E402
from models.qa.span_search import DEFAULT_LENGTH_PENALTY  # noqa: E402
from models.qa.synthetic import error_breakdown, make_labelled_examples  # noqa: E402
from models.store import QAManifest, read_manifest  # noqa: E402
from training.qa import (  # noqa: E402
    DEMO_HELDOUT_SEED,
    DEMO_HELDOUT_SYNTHETIC,
    DEMO_NOISE_HELDOUT_SYNTHETIC,
    DEMO_OWN_NAMES_HELDOUT_SYNTHETIC,
    DEMO_OWN_VALUES_HELDOUT_SYNTHETIC,
    DEMO_OWN_WORDS_HELDOUT_SYNTHETIC,
    DEMO_PRONOUN_HELDOUT_SYNTHETIC,
    DEMO_TWO_PEOPLE_HELDOUT_SYNTHETIC,
    DEMO_WORDING_HELDOUT_SYNTHETIC,
    ISSUE_EXAMPLES,
    NOISE_EXAMPLES,
    OWN_EXAMPLES,
    PRONOUN_EXAMPLES,
    USER_EXAMPLES,
)

# The held-out sets (`--set`).
SETS = {
    "hard": DEMO_HELDOUT_SYNTHETIC,
    "wording": DEMO_WORDING_HELDOUT_SYNTHETIC,
    "pronoun": DEMO_PRONOUN_HELDOUT_SYNTHETIC,
    "two-people": DEMO_TWO_PEOPLE_HELDOUT_SYNTHETIC,
    "own-words": DEMO_OWN_WORDS_HELDOUT_SYNTHETIC,
    "own-names": DEMO_OWN_NAMES_HELDOUT_SYNTHETIC,
    "own-values": DEMO_OWN_VALUES_HELDOUT_SYNTHETIC,
    "noise": DEMO_NOISE_HELDOUT_SYNTHETIC,
}


def load_qa_version(path: Path) -> tuple[Any, BertTokenizer, dict[str, Any]]:
    """A QA version's step model, tokenizer and `answer_questions` options, as the service
    decodes with them (the manifest's limits, beam size, extractive setting, softmax and
    placeholders)."""
    from models.bert.lm_reader import SavedModelLMStepModel
    from models.qa.input_softmax import step_model_for

    manifest = read_manifest(path, QAManifest)
    spec = manifest.tokenizer
    tokenizer = BertTokenizer(path / spec.vocab, spec.lowercase, spec.strip_accents)
    options: dict[str, Any] = {
        "max_passage_tokens": manifest.max_passage_tokens,
        "max_question_tokens": manifest.max_question_tokens,
        "max_answer_tokens": manifest.max_answer_tokens,
        "beam_size": manifest.decoding.beam_size,
        "extractive": manifest.decoding.extractive,
        "placeholders": manifest.placeholder_count,
        "answer_input": manifest.decoding.answer_input,
        "read_by": manifest.decoding.read_by,
    }
    model = step_model_for(SavedModelLMStepModel(path), manifest.decoding.answer_softmax)
    return model, tokenizer, options


def main(argv: list[str] | None = None) -> dict[str, object]:

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a version folder")
    parser.add_argument("--count", type=int, default=1000, help="held-out questions")
    parser.add_argument("--seed", type=int, default=DEMO_HELDOUT_SEED)
    parser.add_argument("--set", choices=list(SETS), default="hard", help="held-out questions")
    parser.add_argument(
        "--examples", action="store_true", help="answer issue 18's and the users' examples"
    )
    parser.add_argument(
        "--span-search", action="store_true", help="score whole spans (extractive models)"
    )
    parser.add_argument(
        "--length-penalty", type=float, default=None, help="with --span-search (default 1)"
    )
    parser.add_argument(
        "--read-by", choices=READ_BY, default=None, help="default: the manifest's decoding.read_by"
    )
    args = parser.parse_args(argv)
    model, tokenizer, options = load_qa_version(args.model)
    if args.read_by is not None:
        options["read_by"] = args.read_by
    if args.span_search:
        options.update(span_search=True, length_penalty=args.length_penalty)
    labelled = make_labelled_examples(args.count, args.seed, SETS[args.set])
    predictions: list[str | None] = []
    for start in range(0, len(labelled), 16):
        chunk = labelled[start : start + 16]
        results = answer_questions(
            model,
            tokenizer,
            [(i.example.question, [p.text for p in i.example.passages]) for i in chunk],
            **options,
        )
        predictions.extend(r.answer for r in results)
    report: dict[str, object] = {"model": str(args.model), "seed": args.seed, "set": args.set}
    report["read_by"] = options["read_by"]
    if args.span_search:
        penalty = DEFAULT_LENGTH_PENALTY if args.length_penalty is None else args.length_penalty
        report["decoding"] = f"span search, length penalty {penalty:g}"
    report.update({k: round(v, 4) for k, v in error_breakdown(labelled, predictions).items()})
    if args.examples:
        for key, examples in (
            ("examples", ISSUE_EXAMPLES),
            ("user_examples", USER_EXAMPLES),
            ("pronoun_examples", PRONOUN_EXAMPLES),
            ("own_examples", OWN_EXAMPLES),
            ("noise_examples", NOISE_EXAMPLES),
        ):
            pairs = [(q, p) for q, p, _ in examples]
            answers = answer_questions(model, tokenizer, pairs, **options)
            report[key] = [
                {"question": q, "passages": p, "expected": e, "answer": a.answer,
                 "score": round(a.score, 5)}
                for (q, p, e), a in zip(examples, answers, strict=True)
            ]  # fmt: skip
            right = sum(a.answer == e for (_, _, e), a in zip(examples, answers, strict=True))
            report[f"{key}_right"] = f"{right}/{len(examples)}"
    print(json.dumps(report, ensure_ascii=False, indent=1))
    return report


if __name__ == "__main__":
    main()
