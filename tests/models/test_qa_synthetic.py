"""Synthetic QA data: answers are in their passages, unanswerable questions have none, the hard
settings put the contrasts in that make the person asked matter."""

from __future__ import annotations

from models.qa.readers import Passage, QAExample
from models.qa.synthetic import (
    ABSENT,
    ANSWERED,
    ATTRIBUTES,
    UNSTATED,
    LabelledExample,
    SyntheticConfig,
    error_breakdown,
    make_labelled_examples,
    make_mixed_examples,
    make_synthetic_examples,
)

HARD = SyntheticConfig(
    people_per_passage=(1, 3),
    facts_per_person=(1, 3),
    unanswerable_fraction=0.3,
    shared_attribute_fraction=0.5,
    similar_name_fraction=0.5,
    questions="all",
)
_BY_NAME = {a.name: a for a in ATTRIBUTES}


def test_same_seed_same_data_other_seed_other_data():
    assert make_synthetic_examples(20, seed=1) == make_synthetic_examples(20, seed=1)
    assert make_synthetic_examples(20, seed=1) != make_synthetic_examples(20, seed=2)


def _states(text: str, person: str, attribute: str) -> bool:
    """Whether `text` states `attribute` of `person` (with any value)."""
    head = _BY_NAME[attribute].statement.split("{value}")[0].format(name=person)
    return any(sentence.startswith(head) for sentence in text.split("。"))


def test_answers_are_stated_for_the_person_asked_about():
    for config in (SyntheticConfig(), HARD):
        for item in make_labelled_examples(300, seed=0, config=config):
            example, attribute = item.example, _BY_NAME[item.attribute]
            assert item.person in example.question
            for passage in example.passages:
                if passage.answer is None:
                    assert not _states(passage.text, item.person, item.attribute), item
                else:
                    statement = attribute.statement.format(name=item.person, value=passage.answer)
                    assert statement in passage.text, item
            # passages that hold an answer agree on it
            assert len(example.gold_answers()) <= 1
            assert example.has_answer == (item.kind == ANSWERED)
            named = any(item.person in p.text for p in example.passages)
            assert named == (item.kind != ABSENT), item


def test_no_name_hides_inside_another():
    # every mention of the person asked is one of their own sentences ("张伟" never inside "张伟华")
    for item in make_labelled_examples(300, seed=3, config=HARD):
        for passage in item.example.passages:
            sentences = [s for s in passage.text.split("。") if s]
            own = [s for s in sentences if s.startswith(item.person)]
            assert passage.text.count(item.person) == len(own), item
            assert all(not s[len(item.person)].isdigit() for s in own)


def test_unanswerable_share_and_several_passages():
    config = SyntheticConfig(unanswerable_fraction=0.3, passages_per_question=(1, 3))
    examples = make_synthetic_examples(600, seed=5, config=config)
    unanswerable = sum(not e.has_answer for e in examples) / len(examples)
    assert 0.22 < unanswerable < 0.38
    assert {len(e.passages) for e in examples} == {1, 2, 3}
    # some answerable questions come with passages that do not hold the answer
    assert any(e.has_answer and any(p.answer is None for p in e.passages) for e in examples)


def test_hard_settings_put_in_the_contrasts():
    items = make_labelled_examples(600, seed=7, config=HARD)
    kinds = {kind: sum(i.kind == kind for i in items) for kind in (ANSWERED, UNSTATED, ABSENT)}
    assert kinds[UNSTATED] > 60 and kinds[ABSENT] > 60
    # the same fact stated for somebody else, often
    assert sum(bool(i.other_values) for i in items) > 200
    # somebody sharing the surname or the given name of the person asked, often
    similar = 0
    for item in items:
        text = "".join(p.text for p in item.example.passages)
        surname, given = item.person[0], item.person[1:]
        names = {s[: len(item.person) + 1] for s in text.split("。") if s}
        similar += any(n != item.person and (n.startswith(surname) or given in n) for n in names)
    assert similar > 200
    # held-out wordings: only when asked for, never in the training templates
    assert 50 < sum(i.held_out_question for i in items) < 300
    train = make_labelled_examples(600, seed=7, config=SyntheticConfig(questions="train"))
    assert not any(i.held_out_question for i in train)
    held_out = {t.format(name="") for a in ATTRIBUTES for t in a.held_out_questions}
    trained = {t.format(name="") for a in ATTRIBUTES for t in a.questions}
    assert not held_out & trained


def test_error_breakdown_tells_the_errors_apart():
    def item(kind: str, gold: str | None, others: set[str], held_out: bool = False):
        example = QAExample("张伟住在哪里？", [Passage("张伟住在北京。王芳住在上海。", gold)])
        return LabelledExample(example, kind, "张伟", "city", held_out, frozenset(others))

    items = [
        item(ANSWERED, "北京", {"上海"}),  # right
        item(ANSWERED, "北京", {"上海"}),  # other person's value
        item(ABSENT, None, {"上海"}),  # answered for an absent person
        item(UNSTATED, None, {"上海"}, held_out=True),  # right, held-out wording
        item(ANSWERED, "北京", set(), held_out=True),  # missed
    ]
    report = error_breakdown(items, ["北京", "上海", "上海", None, None])
    assert report["count"] == 5
    assert report["exact_match"] == 2 / 5
    assert report["em_held_out_wording"] == 1 / 2
    assert report["em_absent"] == 0
    assert report["absent_answered"] == 1
    assert report["other_person_value"] == 1
    assert report["missed"] == 1
    assert report["wrong_span"] == 0


def test_a_mixture_takes_its_kinds_in_turn_and_one_kind_is_that_kind():
    easy = SyntheticConfig(
        people_per_passage=(1, 1), same_person_fraction=1.0, unnamed_fraction=0.0
    )
    mixed = make_mixed_examples(40, seed=3, configs=[easy, HARD])
    assert make_mixed_examples(40, seed=3, configs=[easy, HARD]) == mixed
    # the easy kind's passages are about the person asked only; the hard kind's often are not
    asked = [e.question[:2] for e in mixed]
    only_asked = [all(p.text.startswith(a) or a in p.text for p in e.passages)
                  for a, e in zip(asked, mixed, strict=True)]  # fmt: skip
    assert all(only_asked[0::2])
    assert not all(only_asked[1::2])
    assert make_mixed_examples(30, seed=3, configs=[HARD]) == make_synthetic_examples(
        30, seed=3, config=HARD
    )
