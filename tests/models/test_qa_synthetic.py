"""Synthetic QA data: answers are in their passages, unanswerable questions have none."""

from __future__ import annotations

import re

from models.qa.synthetic import ATTRIBUTES, SyntheticConfig, make_synthetic_examples


def test_same_seed_same_data_other_seed_other_data():
    assert make_synthetic_examples(20, seed=1) == make_synthetic_examples(20, seed=1)
    assert make_synthetic_examples(20, seed=1) != make_synthetic_examples(20, seed=2)


def test_answers_are_stated_for_the_person_asked_about():
    statements = {a.name: a for a in ATTRIBUTES}
    examples = make_synthetic_examples(300, seed=0)
    for example in examples:
        person = re.match(
            r"^(\w+?)(住在|的|今年|平时|出生|是哪|是做|养|毕业|最喜欢)", example.question
        )
        assert person is not None, example.question
        name = person.group(1)
        for passage in example.passages:
            if passage.answer is None:
                continue
            assert any(
                a.statement.format(name=name, value=passage.answer) in passage.text
                for a in statements.values()
            ), (example.question, passage)
        # passages that hold an answer agree on it
        assert len(example.gold_answers()) <= 1


def test_unanswerable_share_and_several_passages():
    config = SyntheticConfig(unanswerable_fraction=0.3, passages_per_question=(1, 3))
    examples = make_synthetic_examples(600, seed=5, config=config)
    unanswerable = sum(not e.has_answer for e in examples) / len(examples)
    assert 0.22 < unanswerable < 0.38
    assert {len(e.passages) for e in examples} == {1, 2, 3}
    # some answerable questions come with passages that do not hold the answer
    assert any(e.has_answer and any(p.answer is None for p in e.passages) for e in examples)
