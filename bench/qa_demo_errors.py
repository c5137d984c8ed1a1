"""Where a demo-style QA model goes wrong on the held-out hard questions: errors split by kind and
by what the question and its passages look like.

    .venv/bin/python bench/qa_demo_errors.py --model model_store/demo-qa/1 [--count 400] \\
        [--seed 1001] [--json out.json] [--show 20]

Same questions and decoding as `bench/qa_demo_heldout.py` (`training.qa.DEMO_HELDOUT_SYNTHETIC`,
seed 1001, the manifest's beam size and extractive setting). Each question is also answered over
each of its passages alone, which says which passage led the vote astray: the decoder drops a
passage whose first token is [SEP], so a question goes wrong when one passage answers that
should not (a false passage) or the passage that holds the answer says "no answer" (a missed
passage).

Passages are parsed back into (person, fact, value) statements (the generator's templates,
`models.qa.synthetic.ATTRIBUTES`), which gives each question's traits: how many people the
passages name, whether a person with a like name (same surname or given name) is among them,
whether other people state the asked fact, the question's wording (a training or a held-out
template), and whether a word of the question outside the name (e.g. 喜欢) occurs in a
sentence about another fact or another person. It prints exact match and the error kinds per
value of each trait, then a few wrong questions with their passages.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.qa_demo_heldout import load_qa_version  # noqa: E402
from models.bert.tokenizer import BertTokenizer  # noqa: E402
from models.qa.decoding import answer_questions  # noqa: E402
from models.qa.metrics import normalize_answer  # noqa: E402
from models.qa.synthetic import (  # noqa: E402
    ABSENT,
    ATTRIBUTES,
    LabelledExample,
    make_labelled_examples,
)
from training.qa import DEMO_HELDOUT_SEED, DEMO_HELDOUT_SYNTHETIC  # noqa: E402

_BY_NAME = {a.name: a for a in ATTRIBUTES}
# Statement templates, longest fixed part first (最喜欢的颜色是 before anything shorter).
_STATEMENTS = sorted(
    ((a.name, *a.statement.rstrip("。").split("{value}")) for a in ATTRIBUTES),
    key=lambda t: -len(t[1]),
)
_SENTENCE_ENDS = "。！？；"


def sentences(text: str) -> list[str]:
    """The passage's sentences, each with its end mark."""
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in _SENTENCE_ENDS:
            out.append(text[start : i + 1])
            start = i + 1
    if start < len(text):
        out.append(text[start:])
    return out


def parse_statement(sentence: str) -> tuple[str, str, str] | None:
    """(person, attribute, value) of a generated statement, or None."""
    body = sentence.rstrip(_SENTENCE_ENDS)
    for name, head, tail in _STATEMENTS:
        head = head.replace("{name}", "")
        for size in (2, 3):
            person, rest = body[:size], body[size:]
            if rest.startswith(head) and rest.endswith(tail):
                value = rest[len(head) : len(rest) - len(tail)] if tail else rest[len(head) :]
                if value:
                    return person, name, value
    return None


def bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def marks(text: str, other: str) -> list[bool]:
    """The bigram exact-match marks of `text`'s characters against `other`
    (`models.bert.overlap.bigram_overlap` in plain Python)."""
    shared = bigrams(other)
    out = [False] * len(text)
    for i in range(len(text) - 1):
        if text[i : i + 2] in shared:
            out[i] = out[i + 1] = True
    return out


def _like(a: str, b: str) -> bool:
    """Same surname or same given name (not the same name)."""
    return a != b and (a[0] == b[0] or a[1:] == b[1:])


def traits(item: LabelledExample) -> dict[str, Any]:
    """What the question and its passages look like."""
    person, attribute = item.person, item.attribute
    question = item.example.question
    statements = []  # (passage index, sentence, person, attribute, value)
    for k, passage in enumerate(item.example.passages):
        for s in sentences(passage.text):
            parsed = parse_statement(s)
            assert parsed is not None, s
            statements.append((k, s, *parsed))
    people = {who for _, _, who, _, _ in statements}
    others = people - {person}
    like = {who for who in others if _like(who, person)}
    stating = {who for _, _, who, a, _ in statements if a == attribute and who != person}
    template = question.replace(person, "{name}", 1)
    # Bigrams of the question outside the name, and the sentences (not the asked person's
    # statement of the asked fact) that hold one of them.
    cue = {b for b in bigrams(question) if not set(b) & set(person)}
    cue.discard("？")
    right = [s for _, s, who, a, _ in statements if who == person and a == attribute]
    right_cue = bool(right) and bool(cue & bigrams(right[0]))
    decoys = [
        (who, a)
        for _, s, who, a, _ in statements
        if not (who == person and a == attribute) and cue & bigrams(s)
    ]

    # The "sentence overlap" a sentence-level feature would give: distinct question bigrams in
    # the sentence. Does the asked person's statement of the fact score above every other one?
    def score(s: str) -> int:
        return len(bigrams(question) & bigrams(s))

    best_other = max(
        (score(s) for _, s, who, a, _ in statements if not (who == person and a == attribute)),
        default=0,
    )
    # Another person's name marked (some of its characters inside a bigram the question holds):
    # the marks alone do not single the asked name out.
    name_leak = any(
        any(marks(s, question)[: len(who)]) for _, s, who, _, _ in statements if who != person
    )
    return {
        "kind": item.kind,
        "name_length": len(person),
        "other_name_marked": name_leak,
        "wording": "held_out" if item.held_out_question else "train",
        "template": template,
        "attribute": attribute,
        "passages": len(item.example.passages),
        "people": len(people | {person}) if item.kind != ABSENT else len(people) + 1,
        "like_named_present": bool(like),
        "others_state_fact": bool(stating),
        "like_named_states_fact": bool(stating & like),
        "right_sentence_has_cue": right_cue if right else None,
        "cue_in_other_sentence": bool(decoys),
        "cue_decoy_same_attribute": any(a == attribute for _, a in decoys),
        "cue_decoy_other_attribute": any(a != attribute for _, a in decoys),
        "sentence_overlap_right_wins": (score(right[0]) > best_other) if right else None,
        "_statements": statements,
    }


def classify(item: LabelledExample, prediction: str | None) -> str:
    """ "right" or the error kind of `models.qa.synthetic.error_breakdown`."""
    predicted = normalize_answer(prediction)
    gold = [normalize_answer(a) for a in item.example.gold_answers()]
    if (predicted in gold) if gold else not predicted:
        return "right"
    if not predicted:
        return "missed"
    if item.kind == ABSENT:
        return "absent_answered"
    if predicted in {normalize_answer(v) for v in item.other_values}:
        return "other_person_value"
    if not gold:
        return "unstated_answered"
    return "wrong_span"


def passage_roles(item: LabelledExample, t: dict[str, Any]) -> list[str]:
    """Each passage's role: "holds" (states the asked fact of the person asked), "names" (names
    them without it), "others-fact" (not them; someone else states the asked fact), "others"."""
    roles = []
    for k, _ in enumerate(item.example.passages):
        here = [(who, a) for j, _, who, a, _ in t["_statements"] if j == k]
        if (item.person, item.attribute) in here:
            roles.append("holds")
        elif any(who == item.person for who, _ in here):
            roles.append("names")
        elif any(a == item.attribute for _, a in here):
            roles.append("others-fact")
        else:
            roles.append("others")
    return roles


def _answer(model: Any, tokenizer: BertTokenizer, pairs: Sequence[tuple[str, list[str]]],
            options: dict[str, Any]) -> list[str | None]:  # fmt: skip
    out: list[str | None] = []
    for start in range(0, len(pairs), 16):
        results = answer_questions(model, tokenizer, pairs[start : start + 16], **options)
        out.extend(r.answer for r in results)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="a version folder")
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--seed", type=int, default=DEMO_HELDOUT_SEED)
    parser.add_argument("--json", type=Path, default=None, help="write the per-question rows")
    parser.add_argument("--show", type=int, default=15, help="wrong questions to print")
    args = parser.parse_args(argv)
    model, tokenizer, options = load_qa_version(args.model)
    labelled = make_labelled_examples(args.count, args.seed, DEMO_HELDOUT_SYNTHETIC)
    predictions = _answer(
        model, tokenizer, [(i.example.question, [p.text for p in i.example.passages])
                           for i in labelled], options
    )  # fmt: skip
    singles = [(i.example.question, [p.text]) for i in labelled for p in i.example.passages]
    single_answers = iter(_answer(model, tokenizer, singles, options))

    rows = []
    for item, prediction in zip(labelled, predictions, strict=True):
        t = traits(item)
        roles = passage_roles(item, t)
        alone = [next(single_answers) for _ in item.example.passages]
        t["outcome"] = classify(item, prediction)
        t["prediction"] = prediction
        # Passages that answer alone though they should not, and holding ones that do not.
        t["false_passages"] = [r for r, a in zip(roles, alone, strict=True)
                               if a and r != "holds"]  # fmt: skip
        t["missed_passages"] = sum(1 for r, a in zip(roles, alone, strict=True)
                                   if r == "holds" and not a)  # fmt: skip
        t["wrong_alone"] = sum(
            1 for r, a, p in zip(roles, alone, item.example.passages, strict=True)
            if r == "holds" and a and normalize_answer(a) != normalize_answer(p.answer)
        )  # fmt: skip
        t["roles"] = roles
        t["question"] = item.example.question
        t["passage_texts"] = [p.text for p in item.example.passages]
        t["alone"] = alone
        # Whose value the wrong answer is: a like-named person's, and in a passage naming the
        # person asked?
        if t["outcome"] in ("other_person_value", "absent_answered", "unstated_answered"):
            owners = [(j, who) for j, _, who, a, v in t["_statements"]
                      if a == item.attribute and normalize_answer(v) == normalize_answer(prediction)
                      and who != item.person]  # fmt: skip
            t["wrong_owner_like"] = any(_like(who, item.person) for _, who in owners)
            t["wrong_owner_beside_asked"] = any(roles[j] in ("holds", "names") for j, _ in owners)
        rows.append(t)

    kinds = ["right", "missed", "other_person_value", "absent_answered", "unstated_answered",
             "wrong_span"]  # fmt: skip
    report: dict[str, Any] = {"model": str(args.model), "count": len(rows)}
    report["outcomes"] = dict(Counter(r["outcome"] for r in rows))
    report["exact_match"] = report["outcomes"].get("right", 0) / len(rows)

    def split(key: str) -> dict[str, Any]:
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for r in rows:
            groups[str(r[key])][r["outcome"]] += 1
        return {
            value: {"n": sum(c.values()), "em": round(c["right"] / sum(c.values()), 3),
                    **{k: c[k] for k in kinds[1:] if c[k]}}
            for value, c in sorted(groups.items())
        }  # fmt: skip

    for key in ("kind", "wording", "name_length", "other_name_marked", "attribute", "passages",
                "people", "like_named_present", "others_state_fact", "like_named_states_fact",
                "right_sentence_has_cue",
                "cue_in_other_sentence", "cue_decoy_same_attribute", "cue_decoy_other_attribute",
                "sentence_overlap_right_wins", "template"):  # fmt: skip
        report[f"by_{key}"] = split(key)
    wrong = [r for r in rows if r["outcome"] != "right"]
    report["errors_false_passage_roles"] = dict(
        Counter(role for r in wrong for role in r["false_passages"])
    )
    report["errors_with_missed_holding_passage"] = sum(1 for r in wrong if r["missed_passages"])
    report["errors_with_wrong_alone"] = sum(1 for r in wrong if r["wrong_alone"])
    report["errors_with_false_passage"] = sum(1 for r in wrong if r["false_passages"])
    report["errors_right_when_alone_only"] = sum(
        1 for r in wrong if not r["false_passages"] and not r["missed_passages"]
        and not r["wrong_alone"]
    )  # fmt: skip
    picked = [r for r in wrong if "wrong_owner_like" in r]
    report["wrong_value_owner_like_named"] = sum(1 for r in picked if r["wrong_owner_like"])
    report["wrong_value_owner_beside_asked"] = sum(
        1 for r in picked if r["wrong_owner_beside_asked"]
    )
    report["wrong_value_count"] = len(picked)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    for r in wrong[: args.show]:
        print(f"\n{r['outcome']}: {r['question']} -> {r['prediction']!r} ({r['kind']}, "
              f"{r['wording']} wording)")  # fmt: skip
        for text, role, a in zip(r["passage_texts"], r["roles"], r["alone"], strict=True):
            print(f"  [{role:11}] alone -> {a!r:8} {text}")
    if args.json is not None:
        for r in rows:
            del r["_statements"]
        args.json.write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    return report


if __name__ == "__main__":
    main()
