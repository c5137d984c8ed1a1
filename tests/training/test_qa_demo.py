"""The demo QA model (`training.demo`'s recipe, `training.qa.train_qa_demo`) tells people apart:
it answers null for people no passage names and answers the ones named, on questions the test
makes itself, in process and through a real server.

Trains the demo's full recipe once for the module (minutes: marked slow). `QA_DEMO_MODEL=<version
folder>` checks an already trained model instead (how the recipe before issue 18 was checked: it
fails `test_absent_people_get_no_answer`).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import httpx
import pytest

from models.bert.lm_reader import SavedModelLMStepModel
from models.bert.tokenizer import BertTokenizer
from models.qa.decoding import QAResult, answer_questions
from models.qa.input_softmax import step_model_for
from models.qa.synthetic import ATTRIBUTES, GIVEN_NAMES, SURNAMES, Attribute, wide_name
from models.store import QAManifest, read_manifest
from tests.live_server import live_server
from training.qa import ISSUE_EXAMPLES, OWN_EXAMPLES, USER_EXAMPLES, train_qa_demo

# The demo recipe (the mixture of easy and hard kinds, with the exact-match and sentence
# features) on questions made here: people present, absent, other people in the passages, a fact
# stated only of somebody else beside the person asked, and issue 18's nine requests through a
# real server. It reaches 0.9425 and 0.970 on the bench's 400 held-out questions at seeds 0 and 1
# (docs/benchmarks.md, "Unstated facts"), within a standard error (~0.011) of issue 18's 0.95, so
# these tests ask 0.9 a kind of 40 questions (the recipe before the unstated questions answered
# 0.875 of `_unstated_set` null at seed 0).
# Training the recipe takes about 8 minutes of 2 quiet cores, so the module runs when asked:
# QA_DEMO_MODEL=<version folder>, or RUN_QA_DEMO=1 to train the recipe here.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.environ.get("QA_DEMO_MODEL") or os.environ.get("RUN_QA_DEMO")),
        reason="trains the demo QA recipe (minutes): set RUN_QA_DEMO=1 or QA_DEMO_MODEL",
    ),
]

# Share of the test's questions the model must get right, per kind (these kinds are simpler
# than the bench's mixed held-out questions: one contrast at a time; 40 questions a kind).
REQUIRED = 0.9
QUESTIONS_PER_KIND = 40
# Of the hand-written requests in ordinary wording (`USER_EXAMPLES`: compound sentences, other
# statement forms, a value training never sees, a sentence without its value), how many the model
# must answer right: the recipe before ordinary wording answered 8 and 12 of 16 (seeds 0 and 1),
# today's 15 and 16 (docs/benchmarks.md, "Ordinary wording").
USER_REQUIRED = 14
# Of a user's own people and values (`_own_words_set`: names and values training never drew),
# the share the model must get right, and of `OWN_EXAMPLES` (issue 18's probe: 李雷 in 乌鲁木齐,
# a 柯基犬), how many. The recipe before placeholders got 0-0.05 of the 40 and 4 of the 10 (the
# values were `[UNK]`s to its 419-character vocabulary); with placeholders
# (`models.qa.placeholders`, runs C and D at seeds 0 and 1) 0.075-0.20 of the 40 and 5-7 of the
# 10: the values are copied now but mostly cut short (柯基犬 -> 柯基). No recipe tried reached
# this yet (docs/benchmarks.md, "A user's own names and values", "Placeholders for a user's own
# words"), so the test is an expected failure, strict: a recipe that passes it says so.
OWN_REQUIRED = 0.8
OWN_EXAMPLES_REQUIRED = 8


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("QA_DEMO_MODEL")
    if given:
        return Path(given)
    store = tmp_path_factory.mktemp("store")
    return train_qa_demo(store, "demo-qa", seed=0)


def _answer(version: Path, questions: list[tuple[str, list[str]]]) -> list[QAResult]:
    manifest = read_manifest(version, QAManifest)
    spec = manifest.tokenizer
    tokenizer = BertTokenizer(version / spec.vocab, spec.lowercase, spec.strip_accents)
    return answer_questions(
        step_model_for(SavedModelLMStepModel(version), manifest.decoding.answer_softmax),
        tokenizer,
        questions,
        max_passage_tokens=manifest.max_passage_tokens,
        max_question_tokens=manifest.max_question_tokens,
        max_answer_tokens=manifest.max_answer_tokens,
        beam_size=manifest.decoding.beam_size,
        extractive=manifest.decoding.extractive,
        placeholders=manifest.placeholder_count,
        answer_input=manifest.decoding.answer_input,
    )


def _near(rng: random.Random, name: str, taken: list[str]) -> str:
    """A name sharing the surname or the given name of `name`, not a prefix of one taken."""
    while True:
        other = (
            name[0] + rng.choice(GIVEN_NAMES)
            if rng.random() < 0.5
            else rng.choice(SURNAMES) + name[1:]
        )
        if not any(other.startswith(t) or t.startswith(other) for t in taken):
            return other


def _two_people(
    rng: random.Random,
    attribute: Attribute,
    extra: Attribute,
    person: str,
    other: str,
    own: bool = False,
) -> tuple[list[str], str, str]:
    """(sentences in a drawn order, the value of `person`, the value of `other`): both state
    `attribute`, `person` states `extra` too; values from the pool (`Attribute.values`) or, with
    `own`, from `Attribute.own_values`."""
    values = (lambda a: a.own_values) if own else (lambda a: a.values)
    value, other_value = rng.sample(values(attribute), 2)
    sentences = [
        attribute.statement.format(name=person, value=value),
        attribute.statement.format(name=other, value=other_value),
        extra.statement.format(name=person, value=rng.choice(values(extra))),
    ]
    rng.shuffle(sentences)
    return sentences, value, other_value


def _held_out_set(seed: int = 20261202) -> dict[str, list[tuple[str, list[str], str | None]]]:
    """Questions per kind: "present" (the person's fact is stated, beside the same fact of
    somebody with a like name), "absent" (nobody of that name in the passages; people with like
    names there state the fact), "other person" (a passage of one person only, the question about
    somebody else of a like name). Passages are one or two; wording from the training templates."""
    rng = random.Random(seed)
    kinds: dict[str, list[tuple[str, list[str], str | None]]] = {
        "present": [], "absent": [], "other person": []
    }  # fmt: skip
    for _ in range(QUESTIONS_PER_KIND):
        attribute: Attribute = rng.choice(ATTRIBUTES)
        extra = rng.choice([a for a in ATTRIBUTES if a is not attribute])
        person = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        other = _near(rng, person, [person])
        absent = _near(rng, rng.choice([person, other]), [person, other])
        sentences, value, other_value = _two_people(rng, attribute, extra, person, other)
        passages = ["".join(sentences)]
        if rng.random() < 0.5:  # the two people in passages of their own
            passages = [
                "".join(s for s in sentences if not s.startswith(other)),
                "".join(s for s in sentences if s.startswith(other)),
            ]
        template = rng.choice(attribute.questions)
        kinds["present"].append((template.format(name=person), passages, value))
        kinds["absent"].append((template.format(name=absent), passages, None))
        lone = [attribute.statement.format(name=other, value=other_value)]
        kinds["other person"].append((template.format(name=person), lone, None))
    return kinds


def _share_right(
    version: Path, questions: list[tuple[str, list[str], str | None]]
) -> tuple[float, list[tuple[str, list[str], str | None, str | None]]]:
    results = _answer(version, [(q, p) for q, p, _ in questions])
    wrong = [(q, p, e, r.answer) for (q, p, e), r in zip(questions, results, strict=True)
             if r.answer != e]  # fmt: skip
    return 1 - len(wrong) / len(questions), wrong


def test_absent_people_get_no_answer(version: Path) -> None:
    right, wrong = _share_right(version, _held_out_set()["absent"])
    assert right >= REQUIRED, wrong[:5]


def test_a_passage_about_somebody_else_gets_no_answer(version: Path) -> None:
    right, wrong = _share_right(version, _held_out_set()["other person"])
    assert right >= REQUIRED, wrong[:5]


def test_people_named_get_their_own_fact(version: Path) -> None:
    right, wrong = _share_right(version, _held_out_set()["present"])
    assert right >= REQUIRED, wrong[:5]


def test_the_issue_examples_through_the_service(version: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(version, store / "demo-qa" / version.name)
    with live_server(store) as url:
        answers = [
            httpx.post(
                f"{url}/v1/qa",
                json={"model": "demo-qa", "question": question, "passages": passages},
                timeout=60,
            ).json()
            for question, passages, _ in ISSUE_EXAMPLES
        ]
    got = [(q, a["answer"]) for (q, _, _), a in zip(ISSUE_EXAMPLES, answers, strict=True)]
    assert got == [(q, expected) for q, _, expected in ISSUE_EXAMPLES]


def test_ordinary_users_requests(version: Path) -> None:
    results = _answer(version, [(q, p) for q, p, _ in USER_EXAMPLES])
    got = [(q, p, e, r.answer) for (q, p, e), r in zip(USER_EXAMPLES, results, strict=True)]
    wrong = [g for g in got if g[2] != g[3]]
    assert len(got) - len(wrong) >= USER_REQUIRED, wrong


def _unstated_set(seed: int = 20261204) -> list[tuple[str, list[str], str | None]]:
    """One passage about two people (not of like names), one fact each: the person asked is named
    with another fact, the other person states the fact asked; no answer (`王芳今年多大？` over
    "张伟今年35岁。王芳是一名护士。", an outside tester's probe)."""
    rng = random.Random(seed)
    questions: list[tuple[str, list[str], str | None]] = []
    for _ in range(QUESTIONS_PER_KIND):
        attribute, extra = rng.sample(ATTRIBUTES, 2)
        person, other = (s + rng.choice(GIVEN_NAMES) for s in rng.sample(SURNAMES, 2))
        sentences = [
            attribute.statement.format(name=other, value=rng.choice(attribute.values)),
            extra.statement.format(name=person, value=rng.choice(extra.values)),
        ]
        rng.shuffle(sentences)
        template = rng.choice(attribute.questions)
        questions.append((template.format(name=person), ["".join(sentences)], None))
    return questions


def test_a_fact_stated_of_somebody_else_beside_the_person_asked_gets_no_answer(
    version: Path,
) -> None:
    right, wrong = _share_right(version, _unstated_set())
    assert right >= REQUIRED, wrong[:5]


def _own_words_set(seed: int = 20261205) -> list[tuple[str, list[str], str | None]]:
    """A user's own people and values: names of common characters no training name holds
    (`wide_name` "held_out"), values typed by hand that no pool holds (`Attribute.own_values`:
    乌鲁木齐, 柯基犬); the person asked states the fact beside another person who states it too,
    and one more fact of their own."""
    rng = random.Random(seed)
    questions: list[tuple[str, list[str], str | None]] = []
    while len(questions) < QUESTIONS_PER_KIND:
        attribute, extra = rng.sample(ATTRIBUTES, 2)
        person, other = wide_name(rng, "held_out"), wide_name(rng, "held_out")
        if person.startswith(other) or other.startswith(person):
            continue
        sentences, value, _ = _two_people(rng, attribute, extra, person, other, own=True)
        template = rng.choice(attribute.questions)
        questions.append((template.format(name=person), ["".join(sentences)], value))
    return questions


@pytest.mark.xfail(
    strict=True, reason="values of characters training never copied are cut or missed (issue 18)"
)
def test_a_users_own_names_and_values(version: Path) -> None:
    right, wrong = _share_right(version, _own_words_set())
    assert right >= OWN_REQUIRED, wrong[:5]
    results = _answer(version, [(q, p) for q, p, _ in OWN_EXAMPLES])
    got = [(q, p, e, r.answer) for (q, p, e), r in zip(OWN_EXAMPLES, results, strict=True)]
    wrong = [g for g in got if g[2] != g[3]]
    assert len(got) - len(wrong) >= OWN_EXAMPLES_REQUIRED, wrong
