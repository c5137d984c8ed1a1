"""Synthetic QA data: answers are in their passages, unanswerable questions have none, the hard
settings put the contrasts in that make the person asked matter."""

from __future__ import annotations

import dataclasses
import random

import pytest

from models.qa.readers import Passage, QAExample
from models.qa.synthetic import (
    _TEMPLATE_CHARACTERS,
    ABSENT,
    ANSWERED,
    ATTRIBUTES,
    COMMON_CHARACTER_COUNT,
    GIVEN_NAMES,
    SURNAMES,
    UNSTATED,
    LabelledExample,
    SyntheticConfig,
    _draw_passage,
    _draw_people,
    common_characters,
    error_breakdown,
    make_labelled_examples,
    make_mixed_examples,
    make_synthetic_examples,
    pronoun_for,
    wide_characters,
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


# The wording knobs: several statement forms, compound sentences, wider and held-out values.
WORDING = dataclasses.replace(
    HARD,
    statement_forms="varied",
    compound_fraction=0.4,
    held_out_statement_fraction=0.3,
    value_pool="wide",
    held_out_value_fraction=0.3,
    empty_value_fraction=0.3,
)
# The same wordings, none held out: what training may draw.
WORDING_TRAIN = dataclasses.replace(
    WORDING, questions="train", held_out_statement_fraction=0.0, held_out_value_fraction=0.0
)


def test_the_default_knobs_draw_what_the_generator_drew_before_them():
    # written down from the generator before the wording knobs (commit df85fee)
    first, second = make_synthetic_examples(2, seed=1)
    assert first.question == "萧磊是干什么的？"
    assert first.passages == [
        Passage(
            "任少华住在北京。贾芳的爱好是画画。萧磊养了一只刺猬。贾芳住在成都。任少华的爱好是"
            "骑自行车。萧磊出生于1994年。任少华出生于1970年。萧磊的职业是医生。",
            "医生",
        )
    ]
    assert second.question == "范刚有什么爱好？"
    assert second.passages[0].answer == "踢足球"
    assert second.passages[0].text.endswith("宋海燕的爱好是打篮球。")


def test_the_pronoun_knob_off_draws_what_the_wording_knobs_drew_before_it():
    # written down from the generator before `pronoun_fraction` (commit 8923ab3)
    first, second = make_labelled_examples(2, seed=11, config=WORDING)
    assert first.example == QAExample(
        "汪晓东喜欢什么颜色？",
        [
            Passage("汪晓东最喜欢的颜色是橙色。", "橙色"),
            Passage(
                "汪晓东大学读的是重庆大学。汪晓东喜欢的颜色是橙色。汪晓东家有一只小猫。", "橙色"
            ),
        ],
    )
    assert second.example.question == "白明业余时间喜欢做什么？"
    assert second.example.passages[1].text == (
        "白鹏爱好是弹琴，养了一只白鸽。白慧敏的爱好是弹吉他。白明在做老师。"
    )
    assert not any(i.pronoun for i in make_labelled_examples(300, seed=11, config=WORDING))


def _forms(attribute, held_out: bool) -> list[tuple[str, str]]:
    """(head, tail) around the value of each statement (the name left out) or clause form."""
    if held_out:
        forms = [*attribute.held_out_statements, *attribute.held_out_clauses]
    else:
        forms = [attribute.statement, *attribute.statements, *attribute.clauses]
    out = []
    for form in forms:
        head, tail = form.replace("{name}", "").rstrip("。").split("{value}")
        out.append((head, tail))
    return out


def _stated_in(text: str, person: str, attribute, value: str, held_out: bool) -> bool:
    """Whether `text` states `value` of `person` in one of the forms, alone or as a clause."""
    for sentence in text.split("。"):
        if not sentence.startswith(person):
            continue
        parts = sentence[len(person) :].split("，")
        for head, tail in _forms(attribute, held_out):
            if any(part == head + value + tail for part in parts):
                return True
    return False


def test_wording_knobs_state_answers_in_the_forms_of_their_kind():
    items = make_labelled_examples(600, seed=11, config=WORDING)
    for item in items:
        attribute = _BY_NAME[item.attribute]
        for passage in item.example.passages:
            if passage.answer is None:
                continue
            held = _stated_in(passage.text, item.person, attribute, passage.answer, True)
            trained = _stated_in(passage.text, item.person, attribute, passage.answer, False)
            assert held or trained, item
        if item.kind == ANSWERED:
            value = item.example.gold_answers()[0]
            assert item.held_out_value == (value in attribute.held_out_values), item
    assert 60 < sum(i.held_out_statement for i in items) < 250
    assert 60 < sum(i.compound for i in items) < 300
    assert 60 < sum(i.held_out_value for i in items) < 250
    # a compound sentence names its person once and states two facts or more
    compound = [
        s for i in items for p in i.example.passages for s in p.text.split("。") if "，" in s
    ]
    assert len(compound) > 300
    names = {s + g for s in SURNAMES for g in GIVEN_NAMES}
    for sentence in compound:
        name = next(sentence[:n] for n in (3, 2) if sentence[:n] in names)
        assert sentence.count(name) == 1, sentence


def test_training_wording_never_holds_the_held_out_forms_nor_values():
    held_out_values = {v for a in ATTRIBUTES for v in a.held_out_values}
    items = make_labelled_examples(600, seed=12, config=WORDING_TRAIN)
    wide: set[str] = set()
    for item in items:
        assert not (item.held_out_statement or item.held_out_value or item.held_out_question)
        values = {*item.example.gold_answers(), *item.other_values}
        assert held_out_values.isdisjoint(values), item
        for passage in item.example.passages:
            for sentence in passage.text.split("。"):
                for attribute in ATTRIBUTES:
                    # (numbers hide inside others: "95" in "1959"; the asked fact's are above)
                    words = [v for v in attribute.held_out_values if not v.isdigit()]
                    for value in words:
                        assert value not in sentence or any(
                            value in v and v in sentence
                            for v in (*attribute.values, *attribute.more_values)
                        ), sentence
            wide.update(v for a in ATTRIBUTES for v in a.more_values if v in passage.text)
    assert len(wide) > 40  # the wider pool is drawn from
    # the training forms and values are apart from the held-out ones
    for attribute in ATTRIBUTES:
        trained = {attribute.statement, *attribute.statements}
        assert not trained & set(attribute.held_out_statements), attribute.name
        assert not set(attribute.clauses) & set(attribute.held_out_clauses), attribute.name
        pool = {*attribute.values, *attribute.more_values}
        assert not pool & set(attribute.held_out_values), attribute.name
        assert held_out_values.isdisjoint(pool)


def test_held_out_values_and_forms_use_characters_training_holds():
    # so that an answer made of them is in a vocabulary built from training data
    chars = set(SURNAMES) | set("".join(GIVEN_NAMES)) | set("，。")
    for a in ATTRIBUTES:
        for text in (a.statement, *a.statements, *a.clauses, *a.questions, *a.values,
                     *a.more_values):  # fmt: skip
            chars |= set(text.replace("{name}", "").replace("{value}", ""))
    for a in ATTRIBUTES:
        for text in (*a.held_out_values, *a.held_out_statements, *a.held_out_clauses):
            assert set(text.replace("{name}", "").replace("{value}", "")) <= chars, text


def test_value_less_sentences_only_where_nothing_answers():
    items = make_labelled_examples(600, seed=13, config=WORDING)
    empty = [i for i in items if i.empty_value]
    assert len(empty) > 20
    for item in items:
        attribute = _BY_NAME[item.attribute]
        heads = {h for h, t in _forms(attribute, False) + _forms(attribute, True) if not t}
        heads |= {h + t for h, t in _forms(attribute, False) + _forms(attribute, True) if t}
        sentences = [s for p in item.example.passages for s in p.text.split("。")]
        has_empty = any(s == item.person + head for s in sentences for head in heads)
        assert has_empty == item.empty_value, item
        if item.empty_value:
            assert item.kind == UNSTATED and not item.example.has_answer


def test_wording_knobs_are_checked():
    with pytest.raises(ValueError, match="statement_forms"):
        SyntheticConfig(statement_forms="some")
    with pytest.raises(ValueError, match="value_pool"):
        SyntheticConfig(value_pool="all")
    with pytest.raises(ValueError, match="compound_fraction"):
        SyntheticConfig(compound_fraction=1.5)
    with pytest.raises(ValueError, match="nonce_value_fraction"):
        SyntheticConfig(nonce_value_fraction=-0.1)


def test_error_breakdown_scores_the_wording_flags_apart():
    example = QAExample("张伟住在哪里？", [Passage("张伟生活在北海，今年35岁。", "北海")])
    plain = LabelledExample(example, ANSWERED, "张伟", "city", False, frozenset())
    flagged = dataclasses.replace(plain, held_out_statement=True, compound=True,
                                  held_out_value=True, pronoun=True, own_value=True,
                                  wide_name=True)  # fmt: skip
    report = error_breakdown([plain, flagged, flagged], ["北海", "北海", "35"])
    assert report["exact_match"] == 2 / 3
    for key in ("em_held_out_statement", "em_compound", "em_held_out_value", "em_pronoun",
                "em_own_value", "em_wide_name"):  # fmt: skip
        assert report[key] == 1 / 2
    assert "em_empty_value" not in report


def test_nonce_values_are_made_of_the_pools_characters_and_stated_as_answers():
    config = dataclasses.replace(WORDING_TRAIN, nonce_value_fraction=0.5)
    items = make_labelled_examples(400, seed=14, config=config)
    made_up = 0
    for item in items:
        attribute = _BY_NAME[item.attribute]
        pool = {*attribute.values, *attribute.more_values}
        for value in {*item.example.gold_answers(), *item.other_values}:
            assert value not in attribute.held_out_values
            assert set(value) <= set("".join(pool)), value
            assert len(value) in {len(v) for v in pool}, value
            made_up += value not in pool
    assert made_up > 100
    # none without the knob
    for item in make_labelled_examples(400, seed=14, config=WORDING_TRAIN):
        pool = {*_BY_NAME[item.attribute].values, *_BY_NAME[item.attribute].more_values}
        assert {*item.example.gold_answers(), *item.other_values} <= pool


_NAMES = {s + g for s in SURNAMES for g in GIVEN_NAMES}
_PRONOUN_WORDING = dataclasses.replace(WORDING, pronoun_fraction=0.6)


def _clauses(text: str) -> list[tuple[str, bool, str]]:
    """(subject, whether a pronoun stands for it, the rest) of each clause of `text`, a pronoun
    read as the person of the sentence or clause just before it; fails on a pronoun that comes
    first or does not fit its person."""
    out: list[tuple[str, bool, str]] = []
    subject: str | None = None
    for sentence in filter(None, text.split("。")):
        for i, clause in enumerate(sentence.split("，")):
            name = next((clause[:n] for n in (3, 2) if clause[:n] in _NAMES), None)
            if name is not None:
                subject, rest, by_pronoun = name, clause[len(name) :], False
            elif clause[:1] in ("他", "她"):
                assert subject is not None, f"a pronoun before any name: {text}"
                assert clause[0] == pronoun_for(subject), text
                rest, by_pronoun = clause[1:], True
            else:
                assert i > 0, f"a sentence with no subject: {text}"
                rest, by_pronoun = clause, False
            assert subject is not None, text
            out.append((subject, by_pronoun, rest))
    return out


def _value_stated(rest: str, attribute) -> str | None:
    """The value of `attribute` that a clause (its subject left out) states, if it states one."""
    pool = {*attribute.values, *attribute.more_values, *attribute.held_out_values}
    for head, tail in _forms(attribute, False) + _forms(attribute, True):
        if rest.startswith(head) and rest.endswith(tail):
            value = rest[len(head) : len(rest) - len(tail)]
            if value in pool:
                return value
    return None


def test_pronouns_refer_to_the_person_named_just_before_and_state_their_facts():
    items = make_labelled_examples(600, seed=15, config=_PRONOUN_WORDING)
    separate = compound = 0
    for item in items:
        attribute = _BY_NAME[item.attribute]
        stated_by_pronoun = False
        for passage in item.example.passages:
            assert not passage.text.startswith(("他", "她")), passage.text
            for subject, by_pronoun, rest in _clauses(passage.text):
                value = _value_stated(rest, attribute)
                if not by_pronoun or value is None:
                    continue
                # a pronoun stating the asked fact: the answer if it stands for the person
                # asked, another person's value otherwise
                if subject == item.person:
                    assert passage.answer == value, (item, passage)
                    stated_by_pronoun = True
                else:
                    assert value in item.other_values, (item, passage)
            separate += passage.text.count("。他") + passage.text.count("。她")
            compound += passage.text.count("，他") + passage.text.count("，她")
        assert item.pronoun == stated_by_pronoun, item
        if item.pronoun:
            assert item.kind == ANSWERED
    assert 60 < sum(i.pronoun for i in items) < 300
    assert separate > 200 and compound > 100
    # both pronouns, and the default draws none
    texts = "".join(p.text for i in items for p in i.example.passages)
    assert "他" in texts and "她" in texts
    for item in make_labelled_examples(300, seed=15, config=WORDING):
        assert not item.pronoun
        plain = [p.text.replace("吉他", "") for p in item.example.passages]  # a hobby: 弹吉他
        assert not any(("他" in t or "她" in t) for t in plain), item


def test_every_pronoun_statement_is_a_fact_of_the_person_named_just_before_it():
    # all the facts of every person of a passage, not only the one asked
    config = dataclasses.replace(WORDING, pronoun_fraction=1.0, facts_per_person=(2, 4))
    rng = random.Random(16)
    by_pronoun_seen = 0
    for _ in range(300):
        person = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        drawn = _draw_passage(rng, config, person, rng.choice(ATTRIBUTES), "with", avoid=())
        for subject, by_pronoun, rest in _clauses(drawn.text):
            stated = {a.name: _value_stated(rest, a) for a in ATTRIBUTES}
            stated = {k: v for k, v in stated.items() if v is not None}
            assert stated, rest
            # the clause states one of its subject's facts
            assert any(drawn.facts[subject].get(k) == v for k, v in stated.items()), drawn
            by_pronoun_seen += by_pronoun
    assert by_pronoun_seen > 300


def test_pronoun_for_fits_the_given_name():
    assert pronoun_for("李梅") == "他"  # 梅 alone is no given name the generator has
    assert pronoun_for("王芳") == pronoun_for("陈玉梅") == "她"
    assert pronoun_for("张伟") == pronoun_for("赵建国") == "他"
    with pytest.raises(ValueError, match="pronoun_fraction"):
        SyntheticConfig(pronoun_fraction=1.1)


# Training wording with names and values of common characters (the knobs' training side).
WIDE_TRAIN = dataclasses.replace(WORDING_TRAIN, wide_name_fraction=0.3, wide_value_fraction=0.2)
# The held-out side: every name of held-out characters, every value a user's own.
OWN_WORDS = dataclasses.replace(
    HARD, wide_name_fraction=1.0, name_characters="held_out", own_value_fraction=1.0
)
_POOL_NAME_CHARACTERS = set(SURNAMES) | set("".join(GIVEN_NAMES))


def test_common_characters_are_jiebas_most_frequent_without_a_download():
    chars = common_characters()
    assert len(chars) == len(set(chars)) == COMMON_CHARACTER_COUNT
    assert chars[:5] == ("一", "是", "人", "了", "不")
    assert all("\u4e00" <= c <= "\u9fff" for c in chars)
    assert "乌" in chars and "犬" in chars and "國" not in chars  # GB2312: no traditional forms
    train, held_out = wide_characters()
    assert set(train).isdisjoint(held_out)
    assert 300 < len(held_out) < 500 and len(train) > 3000
    assert _TEMPLATE_CHARACTERS.isdisjoint({*train, *held_out})
    assert _POOL_NAME_CHARACTERS.isdisjoint(held_out)


def test_wide_names_take_training_characters_never_the_held_out_ones():
    train, held_out = wide_characters()
    rng = random.Random(5)
    names = _draw_people(rng, 3000, config=WIDE_TRAIN)
    wide = [n for n in names if n[1:] not in GIVEN_NAMES]
    assert 700 < len(wide) < 1100  # about 30%
    assert all(set(n) <= set(train) | set(SURNAMES) and 2 <= len(n) <= 3 for n in wide)
    assert len(set("".join(wide))) > 1000  # many characters, not a few
    held = _draw_people(random.Random(5), 3000, config=OWN_WORDS)
    assert all(n[0] in SURNAMES and set(n[1:]) <= set(held_out) for n in held)
    # the default knobs never draw one
    assert all(n[1:] in GIVEN_NAMES for n in _draw_people(random.Random(5), 3000))


def test_wide_values_are_stated_as_answers_and_never_a_users_own():
    train, held_out = wide_characters()
    own = {v for a in ATTRIBUTES for v in a.own_values}
    items = make_labelled_examples(600, seed=14, config=WIDE_TRAIN)
    wide_answers = 0
    for item in items:
        attribute = _BY_NAME[item.attribute]
        assert not (item.own_value or item.held_out_value)
        values = {*item.example.gold_answers(), *item.other_values}
        assert own.isdisjoint(values), item
        pool = {*attribute.values, *attribute.more_values}
        for value in values - pool:
            assert not value.isdigit() and set(value) <= {*train, *held_out}, item
            assert 1 <= len(value) <= 4
        for passage in item.example.passages:
            if passage.answer is not None and passage.answer not in pool:
                wide_answers += 1
                assert _stated_in(passage.text, item.person, attribute, passage.answer, False)
    assert wide_answers > 60
    assert 100 < sum(i.wide_name for i in items) < 280


def test_the_own_words_set_asks_about_held_out_names_and_own_values():
    _, held_out = wide_characters()
    items = make_labelled_examples(300, seed=15, config=OWN_WORDS)
    answered = [i for i in items if i.kind == ANSWERED]
    assert answered and all(i.own_value for i in answered)
    for item in answered:
        assert item.example.gold_answers()[0] in _BY_NAME[item.attribute].own_values
    asked = [i for i in items if i.wide_name]
    assert len(asked) > 250  # the others share a surname with one (similar_name_fraction)
    assert all(set(i.person[1:]) <= set(held_out) for i in asked)


def test_own_values_are_many_apart_from_the_pools_and_of_characters_training_draws():
    # so that an answer made of them is in a vocabulary built from the training data
    train, held_out = wide_characters()
    chars = {*train, *held_out, *_TEMPLATE_CHARACTERS, *_POOL_NAME_CHARACTERS, *"0123456789"}
    for a in ATTRIBUTES:
        chars |= set("".join((*a.values, *a.more_values)))
    for a in ATTRIBUTES:
        assert len(set(a.own_values)) >= 15, a.name
        assert not set(a.own_values) & {*a.values, *a.more_values, *a.held_out_values}, a.name
        for value in a.own_values:
            assert set(value) <= chars, value


def _gaps(original: str, noisy: str) -> list[str] | None:
    """The text `noisy` holds between (and around) the sentences of `original`, in order; None
    if they are not all there in order."""
    sentences = [s + "。" for s in original.split("。") if s]
    gaps, at = [], 0
    for sentence in sentences:
        found = noisy.find(sentence, at)
        if found < 0:
            return None
        gaps.append(noisy[at:found])
        at = found + len(sentence)
    return [*gaps, noisy[at:]]


@pytest.mark.parametrize("base", [HARD, WORDING], ids=["hard", "wording"])
def test_noise_puts_distractors_between_sentences_and_changes_no_answer(base):
    plain = make_labelled_examples(300, seed=21, config=base)
    noisy = make_labelled_examples(
        300, seed=21, config=dataclasses.replace(base, noise_fraction=1.0)
    )
    assert not any(i.noise for i in plain)
    assert all(i.noise for i in noisy)
    noise_passages = 0
    snippets = []
    for before, after in zip(plain, noisy, strict=True):
        # the same question, kind and answers: the draws are those without noise
        assert after.example.question == before.example.question
        assert (after.kind, after.person, after.other_values) == (
            before.kind,
            before.person,
            before.other_values,
        )
        assert after.example.gold_answers() == before.example.gold_answers()
        values = {*before.example.gold_answers(), *before.other_values}
        extra = len(after.example.passages) - len(before.example.passages)
        assert extra in (0, 1)
        noise_passages += extra
        kept = iter(before.example.passages)
        expected = next(kept)
        for passage in after.example.passages:
            gaps = _gaps(expected.text, passage.text)
            if gaps is None:  # a passage of distractors only
                assert passage.answer is None and extra == 1
                gaps = [passage.text]
            else:
                assert passage.answer == expected.answer
                assert any(gaps), passage  # every passage is noisy at 1.0
                expected = next(kept, expected)
            for gap in gaps:
                assert item_free(gap, after.person, values), (gap, after)
            snippets += [g for g in gaps if g]
    assert 40 < noise_passages < 120  # a quarter of the examples
    text = "".join(snippets)
    for kind in ("[SEP]", "[MASK]", "注", "ID", "编号", "附录", "Tom lives here."):
        assert kind in text, kind
    assert sum(c.isascii() and c.isalpha() for c in text) > 1000
    assert sum(c.isdigit() for c in text) > 300


def item_free(gap: str, person: str, values: set[str]) -> bool:
    """Whether distractor text names neither the person asked (any case) nor holds a value."""
    return person.lower() not in gap.lower() and not any(v in gap for v in values)


def test_noise_off_draws_no_more():
    # the knob at 0 draws what the generator drew before it (the pinned draws above hold too)
    config = dataclasses.replace(WORDING, noise_fraction=0.0)
    assert make_labelled_examples(50, seed=3, config=config) == make_labelled_examples(
        50, seed=3, config=WORDING
    )
    assert make_mixed_examples(50, 3, [config, HARD]) == make_mixed_examples(50, 3, [WORDING, HARD])
    with pytest.raises(ValueError, match="noise_fraction"):
        SyntheticConfig(noise_fraction=1.5)
