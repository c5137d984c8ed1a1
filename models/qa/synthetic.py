"""Synthetic Chinese reading-comprehension data: passages of facts and questions over them.

A passage states a few facts about two or three people ("张伟住在北京。张伟的职业是医生。王芳今年
35岁。"); a question asks for one fact of one person ("张伟住在哪里？" -> "北京"). Some questions
have no answer: they ask for a fact the passage does not state, about someone it names (often one
it states for somebody else, so copying the nearest value is wrong) or about someone it does not
name. An example may carry several passages, of which some or none hold the answer, as a search
engine's results would (WebQA / SogouQA).

The data need no download and are made the same for the same seed, for the demo model, tests and
the held-out evaluation of `training.demo`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from models.qa.readers import Passage, QAExample

SURNAMES = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹"
GIVEN_NAMES = (
    "伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 涛 明 超 霞 平 刚 辉 "
    "秀英 建国 晓东 文博 子涵 雨欣 浩然 思远 佳怡 志强 海燕 春生"
).split()


@dataclass(frozen=True)
class Attribute:
    """One kind of fact: how a passage states it, how a question asks it, and its values.

    Attributes:
        name: short name of the attribute.
        statement: sentence template with `{name}` and `{value}`.
        questions: question templates with `{name}`.
        values: the values it takes.
    """

    name: str
    statement: str
    questions: tuple[str, ...]
    values: tuple[str, ...]


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "city",
        "{name}住在{value}。",
        ("{name}住在哪里？", "{name}住在哪个城市？"),
        tuple(
            "北京 上海 广州 深圳 杭州 南京 成都 武汉 西安 重庆 天津 苏州 长沙 郑州 青岛 "
            "大连 厦门 昆明 哈尔滨 沈阳".split()
        ),
    ),  # fmt: skip
    Attribute(
        "job",
        "{name}的职业是{value}。",
        ("{name}的职业是什么？", "{name}是做什么工作的？"),
        tuple(
            "医生 教师 律师 工程师 厨师 司机 记者 警察 护士 会计 画家 作家 演员 歌手 "
            "农民 科学家 程序员 设计师 建筑师 飞行员".split()
        ),
    ),  # fmt: skip
    Attribute(
        "age",
        "{name}今年{value}岁。",
        ("{name}今年多少岁？", "{name}今年几岁？"),
        tuple(str(age) for age in range(18, 81)),
    ),
    Attribute(
        "hobby",
        "{name}的爱好是{value}。",
        ("{name}的爱好是什么？", "{name}平时喜欢做什么？"),
        tuple(
            "游泳 下棋 唱歌 跳舞 钓鱼 爬山 画画 读书 跑步 摄影 打篮球 踢足球 弹钢琴 "
            "写书法 骑自行车".split()
        ),
    ),  # fmt: skip
    Attribute(
        "birth_year",
        "{name}出生于{value}年。",
        ("{name}出生于哪一年？", "{name}是哪一年出生的？"),
        tuple(str(year) for year in range(1950, 2006)),
    ),
    Attribute(
        "pet",
        "{name}养了一只{value}。",
        ("{name}养了什么宠物？", "{name}养的是什么动物？"),
        tuple("猫 狗 兔子 鹦鹉 乌龟 仓鼠 金鱼 刺猬".split()),
    ),
    Attribute(
        "school",
        "{name}毕业于{value}。",
        ("{name}毕业于哪所学校？", "{name}是哪所大学毕业的？"),
        tuple(
            "北京大学 清华大学 复旦大学 浙江大学 南京大学 武汉大学 中山大学 四川大学 "
            "南开大学 厦门大学".split()
        ),
    ),  # fmt: skip
    Attribute(
        "color",
        "{name}最喜欢的颜色是{value}。",
        ("{name}最喜欢什么颜色？",),
        tuple("红色 蓝色 绿色 黄色 紫色 白色 黑色 橙色 粉色 灰色".split()),
    ),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """How the synthetic data are drawn.

    Attributes:
        people_per_passage: (least, most) people a passage talks about.
        facts_per_person: (least, most) facts stated per person.
        passages_per_question: (least, most) passages per example.
        unanswerable_fraction: share of examples whose passages hold no answer.
        same_person_fraction: share of an example's other passages that talk about the person
            asked (with other facts) rather than about other people.
        unnamed_fraction: share of unanswerable questions that ask about someone no passage
            names (the others ask for a fact no passage states about the person asked).
    """

    people_per_passage: tuple[int, int] = (2, 3)
    facts_per_person: tuple[int, int] = (2, 4)
    passages_per_question: tuple[int, int] = (1, 3)
    unanswerable_fraction: float = 0.2
    same_person_fraction: float = 0.5
    unnamed_fraction: float = 0.5


# Facts of one passage: person -> {attribute name: value}.
_Facts = dict[str, dict[str, str]]
_BY_NAME = {attribute.name: attribute for attribute in ATTRIBUTES}


def _draw_people(rng: random.Random, count: int, avoid: Sequence[str] = ()) -> list[str]:
    """Distinct names of which none is a prefix of another (so "张伟" never hides in "张伟华")."""
    people: list[str] = []
    while len(people) < count:
        name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        taken = [*people, *avoid]
        if not any(name.startswith(p) or p.startswith(name) for p in taken):
            people.append(name)
    return people


def _draw_passage(
    rng: random.Random, config: SyntheticConfig, must_name: str | None = None
) -> tuple[str, _Facts]:
    count = rng.randint(*config.people_per_passage)
    people = [must_name] if must_name else []
    people += _draw_people(rng, count - len(people), avoid=people)
    facts: _Facts = {}
    sentences = []
    for person in people:
        chosen = rng.sample(ATTRIBUTES, rng.randint(*config.facts_per_person))
        facts[person] = {}
        for attribute in chosen:
            value = rng.choice(attribute.values)
            facts[person][attribute.name] = value
            sentences.append(attribute.statement.format(name=person, value=value))
    # Facts of different people interleave, so the answer is not always next to the name's
    # first mention.
    rng.shuffle(sentences)
    return "".join(sentences), facts


def _question(rng: random.Random, person: str, attribute: Attribute) -> str:
    return rng.choice(attribute.questions).format(name=person)


def make_example(rng: random.Random, config: SyntheticConfig = SyntheticConfig()) -> QAExample:
    """One example: a question and its passages (with their answers or None)."""
    n_passages = rng.randint(*config.passages_per_question)
    answerable = rng.random() >= config.unanswerable_fraction
    text, facts = _draw_passage(rng, config)
    person = rng.choice(list(facts))
    if answerable:
        attribute = _BY_NAME[rng.choice(list(facts[person]))]
    else:
        missing = [a for a in ATTRIBUTES if a.name not in facts[person]]
        if missing and rng.random() < 1.0 - config.unnamed_fraction:
            # Someone the passage names, a fact it does not state for them (but maybe for others).
            stated = {a for f in facts.values() for a in f}
            preferred = [a for a in missing if a.name in stated] or missing
            attribute = rng.choice(preferred)
        else:
            # Someone the passage does not name.
            attribute = _BY_NAME[rng.choice(list(facts[person]))]
            person = _draw_people(rng, 1, avoid=list(facts))[0]
    question = _question(rng, person, attribute)
    value = facts.get(person, {}).get(attribute.name)
    passages = [Passage(text, value)]
    for _ in range(n_passages - 1):
        # Other passages: about the same person with other facts, or about other people.
        other_text, other_facts = _draw_passage(
            rng, config, must_name=person if rng.random() < config.same_person_fraction else None
        )
        if answerable and attribute.name in other_facts.get(person, {}):
            # Another source agrees: several passages hold the same answer.
            value_here = value
            assert value is not None
            other_text = other_text.replace(
                attribute.statement.format(name=person, value=other_facts[person][attribute.name]),
                attribute.statement.format(name=person, value=value),
            )
        else:
            value_here = other_facts.get(person, {}).get(attribute.name)
            if value_here is not None:
                # An unanswerable example stays unanswerable: drop the stated fact.
                other_text = other_text.replace(
                    attribute.statement.format(name=person, value=value_here), ""
                )
                value_here = None
        passages.append(Passage(other_text, value_here))
    rng.shuffle(passages)
    return QAExample(question=question, passages=passages)


def make_synthetic_examples(
    count: int, seed: int = 0, config: SyntheticConfig = SyntheticConfig()
) -> list[QAExample]:
    """`count` examples drawn with `seed` (the same seed gives the same examples).

    Args:
        count: number of examples.
        seed: random seed; use different seeds for training and held-out data.
        config: how passages and questions are drawn.

    Example:
        >>> examples = make_synthetic_examples(2, seed=1)
        >>> len(examples)
        2
    """
    rng = random.Random(seed)
    return [make_example(rng, config) for _ in range(count)]
