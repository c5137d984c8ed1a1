"""Synthetic Chinese reading-comprehension data: passages of facts and questions over them.

A passage states a few facts about one to three people ("张伟住在北京。张伟的职业是医生。王芳今年
35岁。"); a question asks for one fact of one person ("张伟住在哪里？" -> "北京"). Some questions
have no answer: they ask for a fact the passage does not state, about someone it names (often one
it states for somebody else, so copying the nearest value is wrong) or about someone it does not
name. An example may carry several passages, of which some or none hold the answer, as a search
engine's results would (WebQA / SogouQA).

What makes the task hard for a small model is telling people apart: a passage that states the
asked fact for somebody else ("王芳住在上海。" for "张伟住在哪里？") holds no answer. The knobs
`shared_attribute_fraction` (other people state the asked fact too, with other values) and
`similar_name_fraction` (other and absent people share the surname or the given name of the one
asked) make that contrast frequent, so that matching the whole name is what the loss rewards.
Questions come from several paraphrases per fact; some paraphrases (`held_out_questions`) are
kept out of training, to measure whether wording a user types but training never showed is read.

The data need no download and are made the same for the same seed, for the demo model, tests and
the held-out evaluation of `training.demo`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from models.qa.readers import Passage, QAExample

SURNAMES = (
    "张王李赵刘陈杨黄周吴徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘蔡蒋余于杜叶程"
    "魏苏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
GIVEN_NAMES = (
    "伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 涛 明 超 霞 平 刚 辉 玲 鹏 华 红 飞 斌 宇 浩 凯 琳 "
    "秀英 建国 晓东 文博 子涵 雨欣 浩然 思远 佳怡 志强 海燕 春生 桂兰 国庆 一鸣 梓轩 欣怡 俊杰 "
    "天佑 美玲 少华 立新 家豪 若曦 振华 诗涵 明轩 玉梅 德明 慧敏"
).split()

# Answer kinds of a question (`LabelledExample.kind`).
ANSWERED = "answered"  # some passage states the asked fact of the person asked
UNSTATED = "unstated"  # a passage names the person, none states the fact for them
ABSENT = "absent"  # no passage names the person asked


@dataclass(frozen=True)
class Attribute:
    """One kind of fact: how a passage states it, how a question asks it, and its values.

    Attributes:
        name: short name of the attribute.
        statement: sentence template with `{name}` and `{value}`.
        questions: question templates with `{name}`, used in training.
        values: the values it takes.
        held_out_questions: more question templates, never used in training: paraphrases the
            held-out evaluation asks to see whether other wording is read.
    """

    name: str
    statement: str
    questions: tuple[str, ...]
    values: tuple[str, ...]
    held_out_questions: tuple[str, ...] = ()


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute(
        "city",
        "{name}住在{value}。",
        (
            "{name}住在哪里？",
            "{name}住在哪个城市？",
            "{name}住哪儿？",
            "{name}在哪里住？",
            "{name}家住在哪里？",
            "{name}住在什么地方？",
            "{name}住在哪？",
        ),
        tuple(
            "北京 上海 广州 深圳 杭州 南京 成都 武汉 西安 重庆 天津 苏州 长沙 郑州 青岛 "
            "大连 厦门 昆明 哈尔滨 沈阳".split()
        ),
        ("{name}住在哪儿？", "{name}的家在哪个城市？"),
    ),  # fmt: skip
    Attribute(
        "job",
        "{name}的职业是{value}。",
        (
            "{name}的职业是什么？",
            "{name}是做什么工作的？",
            "{name}是干什么的？",
            "{name}做什么工作？",
            "{name}从事什么职业？",
            "{name}的工作是什么？",
        ),
        tuple(
            "医生 教师 律师 工程师 厨师 司机 记者 警察 护士 会计 画家 作家 演员 歌手 "
            "农民 科学家 程序员 设计师 建筑师 飞行员".split()
        ),
        ("{name}是做什么的？", "{name}干什么工作？"),
    ),  # fmt: skip
    Attribute(
        "age",
        "{name}今年{value}岁。",
        (
            "{name}今年多少岁？",
            "{name}今年几岁？",
            "{name}今年多大？",
            "{name}多大了？",
            "{name}的年龄是多少？",
            "{name}几岁了？",
            "{name}多少岁？",
        ),
        tuple(str(age) for age in range(18, 81)),
        ("{name}多少岁了？", "{name}今年多大年纪？"),
    ),  # fmt: skip
    Attribute(
        "hobby",
        "{name}的爱好是{value}。",
        (
            "{name}的爱好是什么？",
            "{name}平时喜欢做什么？",
            "{name}有什么爱好？",
            "{name}喜欢干什么？",
            "{name}平时爱做什么？",
        ),
        tuple(
            "游泳 下棋 唱歌 跳舞 钓鱼 爬山 画画 读书 跑步 摄影 打篮球 踢足球 弹钢琴 "
            "写书法 骑自行车".split()
        ),
        ("{name}有什么兴趣爱好？", "{name}业余时间喜欢做什么？"),
    ),  # fmt: skip
    Attribute(
        "birth_year",
        "{name}出生于{value}年。",
        (
            "{name}出生于哪一年？",
            "{name}是哪一年出生的？",
            "{name}哪年出生？",
            "{name}是哪年生的？",
            "{name}出生在哪一年？",
        ),
        tuple(str(year) for year in range(1950, 2006)),
        ("{name}是哪年出生的？", "{name}生于哪一年？"),
    ),  # fmt: skip
    Attribute(
        "pet",
        "{name}养了一只{value}。",
        (
            "{name}养了什么宠物？",
            "{name}养的是什么动物？",
            "{name}养了什么？",
            "{name}家里养了什么动物？",
            "{name}的宠物是什么？",
        ),
        tuple("猫 狗 兔子 鹦鹉 乌龟 仓鼠 金鱼 刺猬".split()),
        ("{name}养了一只什么？", "{name}养的宠物是什么？"),
    ),  # fmt: skip
    Attribute(
        "school",
        "{name}毕业于{value}。",
        (
            "{name}毕业于哪所学校？",
            "{name}是哪所大学毕业的？",
            "{name}毕业于哪所大学？",
            "{name}在哪所大学读的书？",
            "{name}是哪个学校毕业的？",
        ),
        tuple(
            "北京大学 清华大学 复旦大学 浙江大学 南京大学 武汉大学 中山大学 四川大学 "
            "南开大学 厦门大学".split()
        ),
        ("{name}是从哪所大学毕业的？", "{name}在哪里上的大学？"),
    ),  # fmt: skip
    Attribute(
        "color",
        "{name}最喜欢的颜色是{value}。",
        ("{name}最喜欢什么颜色？", "{name}最喜欢的颜色是什么？", "{name}喜欢什么颜色？"),
        tuple("红色 蓝色 绿色 黄色 紫色 白色 黑色 橙色 粉色 灰色".split()),
        ("{name}最爱什么颜色？", "{name}喜欢哪种颜色？"),
    ),  # fmt: skip
)
# Which templates questions are drawn from (`SyntheticConfig.questions`).
QUESTION_SETS = ("train", "held_out", "all")


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
        shared_attribute_fraction: chance that each other person of a passage has the asked
            fact stated too (with its own value): the same fact, a different person.
        similar_name_fraction: chance that another person of the example (or the absent person
            asked) shares the surname or the given name of the person asked.
        questions: question templates drawn from: "train" (`Attribute.questions`), "held_out"
            (`Attribute.held_out_questions`) or "all".
    """

    people_per_passage: tuple[int, int] = (2, 3)
    facts_per_person: tuple[int, int] = (2, 4)
    passages_per_question: tuple[int, int] = (1, 3)
    unanswerable_fraction: float = 0.2
    same_person_fraction: float = 0.5
    unnamed_fraction: float = 0.5
    shared_attribute_fraction: float = 0.0
    similar_name_fraction: float = 0.0
    questions: str = "train"

    def __post_init__(self) -> None:
        if self.questions not in QUESTION_SETS:
            raise ValueError(f"questions must be one of {QUESTION_SETS}, not {self.questions!r}")


@dataclass(frozen=True)
class LabelledExample:
    """An example and what the evaluation needs to tell its errors apart.

    Attributes:
        example: the question and its passages.
        kind: `ANSWERED`, `UNSTATED` or `ABSENT`.
        person: the person asked about.
        attribute: the name of the fact asked.
        held_out_question: the question's template is one of `Attribute.held_out_questions`.
        other_values: values of the asked fact that the passages state for other people.
    """

    example: QAExample
    kind: str
    person: str
    attribute: str
    held_out_question: bool
    other_values: frozenset[str]


# Facts of one passage: person -> {attribute name: value}.
_Facts = dict[str, dict[str, str]]
_BY_NAME = {attribute.name: attribute for attribute in ATTRIBUTES}


def _clashes(name: str, taken: Sequence[str]) -> bool:
    """Equal to, or a prefix of, a name taken (so "张伟" never hides in "张伟华")."""
    return any(name.startswith(p) or p.startswith(name) for p in taken)


def _draw_people(
    rng: random.Random,
    count: int,
    avoid: Sequence[str] = (),
    like: str | None = None,
    similar_fraction: float = 0.0,
) -> list[str]:
    """Distinct names of which none is a prefix of another or of one in `avoid`; each shares the
    surname or the given name of `like` with probability `similar_fraction`."""
    people: list[str] = []
    while len(people) < count:
        if like is not None and rng.random() < similar_fraction:
            if rng.random() < 0.5:
                name = like[0] + rng.choice(GIVEN_NAMES)
            else:
                name = rng.choice(SURNAMES) + like[1:]
        else:
            name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        if not _clashes(name, [*people, *avoid]):
            people.append(name)
    return people


def _draw_passage(
    rng: random.Random,
    config: SyntheticConfig,
    person: str,
    attribute: Attribute,
    asked: str | None,
    avoid: Sequence[str],
) -> tuple[str, _Facts]:
    """A passage about 1-3 people and its facts.

    Args:
        rng: the random source.
        config: how passages are drawn.
        person: the person asked about (their name is avoided when `asked` is None).
        attribute: the fact asked.
        asked: None (the passage does not name `person`), "with" (it states `attribute` of
            `person`) or "without" (it names `person` but does not state `attribute` of them).
        avoid: more names not to use.
    """
    count = rng.randint(*config.people_per_passage)
    named = [person] if asked else []
    others = _draw_people(
        rng,
        count - len(named),
        avoid=[person, *avoid],
        like=person,
        similar_fraction=config.similar_name_fraction,
    )
    facts: _Facts = {}
    sentences = []
    for who in [*named, *others]:
        k = min(rng.randint(*config.facts_per_person), len(ATTRIBUTES))
        if who == person and asked == "with":
            rest = [a for a in ATTRIBUTES if a is not attribute]
            chosen = [attribute, *rng.sample(rest, k - 1)]
        elif who == person:
            chosen = rng.sample([a for a in ATTRIBUTES if a is not attribute], k)
        elif rng.random() < config.shared_attribute_fraction:
            rest = [a for a in ATTRIBUTES if a is not attribute]
            chosen = [attribute, *rng.sample(rest, k - 1)]
        else:
            chosen = rng.sample(ATTRIBUTES, k)
        facts[who] = {}
        for fact in chosen:
            value = rng.choice(fact.values)
            facts[who][fact.name] = value
            sentences.append(fact.statement.format(name=who, value=value))
    # Facts of different people interleave, so the answer is not always next to the name's
    # first mention.
    rng.shuffle(sentences)
    return "".join(sentences), facts


def _question(
    rng: random.Random, config: SyntheticConfig, person: str, attribute: Attribute
) -> tuple[str, bool]:
    """(question, whether its template is a held-out one)."""
    templates = [(t, False) for t in attribute.questions if config.questions != "held_out"]
    if config.questions != "train":
        templates += [(t, True) for t in attribute.held_out_questions]
    template, held_out = rng.choice(templates)
    return template.format(name=person), held_out


def make_labelled_example(
    rng: random.Random, config: SyntheticConfig = SyntheticConfig()
) -> LabelledExample:
    """One example (a question and its passages, with their answers or None) and its labels."""
    n_passages = rng.randint(*config.passages_per_question)
    attribute = rng.choice(ATTRIBUTES)
    person = _draw_people(rng, 1)[0]
    if rng.random() >= config.unanswerable_fraction:
        kind = ANSWERED
    elif rng.random() < config.unnamed_fraction:
        kind = ABSENT
    else:
        kind = UNSTATED
    # The first passage decides the kind: it states the fact, names the person without it, or
    # talks about others only.
    first = {ANSWERED: "with", UNSTATED: "without", ABSENT: None}[kind]
    drawn = [_draw_passage(rng, config, person, attribute, first, avoid=())]
    value = drawn[0][1][person][attribute.name] if kind == ANSWERED else None
    for _ in range(n_passages - 1):
        # Other passages: about the same person with other facts (or agreeing on the fact
        # asked), or about other people.
        asked: str | None = None
        if kind != ABSENT and rng.random() < config.same_person_fraction:
            asked = "with" if kind == ANSWERED and rng.random() < 0.5 else "without"
        avoid = [p for _, facts in drawn for p in facts if p != person]
        text, facts = _draw_passage(rng, config, person, attribute, asked, avoid=avoid)
        if asked == "with":
            assert value is not None
            # Another source agrees: several passages hold the same answer.
            text = text.replace(
                attribute.statement.format(name=person, value=facts[person][attribute.name]),
                attribute.statement.format(name=person, value=value),
            )
            facts[person][attribute.name] = value
        drawn.append((text, facts))
    passages = [Passage(text, facts.get(person, {}).get(attribute.name)) for text, facts in drawn]
    rng.shuffle(passages)
    other_values = frozenset(
        f[attribute.name]
        for _, facts in drawn
        for who, f in facts.items()
        if who != person and attribute.name in f
    )
    question, held_out = _question(rng, config, person, attribute)
    return LabelledExample(
        QAExample(question=question, passages=passages),
        kind,
        person,
        attribute.name,
        held_out,
        other_values,
    )


def make_example(rng: random.Random, config: SyntheticConfig = SyntheticConfig()) -> QAExample:
    """One example: a question and its passages (with their answers or None)."""
    return make_labelled_example(rng, config).example


def make_labelled_examples(
    count: int, seed: int = 0, config: SyntheticConfig = SyntheticConfig()
) -> list[LabelledExample]:
    """`count` labelled examples drawn with `seed` (see `make_synthetic_examples`)."""
    rng = random.Random(seed)
    return [make_labelled_example(rng, config) for _ in range(count)]


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
    return [labelled.example for labelled in make_labelled_examples(count, seed, config)]


def make_mixed_examples(
    count: int, seed: int, configs: Sequence[SyntheticConfig]
) -> list[QAExample]:
    """`count` examples drawn with `seed`, the i-th from `configs[i % len(configs)]`: a mixture
    of kinds in equal shares (e.g. the easy kind, on which copying is learned quickly, beside the
    hard kind, on which telling people apart is)."""
    if not configs:
        raise ValueError("configs is empty")
    rng = random.Random(seed)
    return [make_labelled_example(rng, configs[i % len(configs)]).example for i in range(count)]


def error_breakdown(
    labelled: Sequence[LabelledExample], predictions: Sequence[str | None]
) -> dict[str, float]:
    """Exact match of `predictions` and what the wrong ones are (answers compared as
    `models.qa.metrics.normalize_answer` does).

    Returns:
        "count", "exact_match"; exact match per kind ("em_answered", "em_unstated",
        "em_absent") and per question wording ("em_train_wording", "em_held_out_wording", over
        the questions of each); error counts: "absent_answered" (any answer for a person no
        passage names), "other_person_value" (for a person a passage names, the value the
        passages state for somebody else),
        "unstated_answered" (another answer where the person's fact is not stated), "missed"
        (no answer where there is one), "wrong_span" (any other wrong answer).
    """
    from models.qa.metrics import normalize_answer

    counts: dict[str, float] = {
        key: 0
        for key in ("absent_answered", "other_person_value", "unstated_answered", "missed",
                    "wrong_span")
    }  # fmt: skip
    right: dict[str, list[bool]] = {}
    for item, prediction in zip(labelled, predictions, strict=True):
        predicted = normalize_answer(prediction)
        gold = [normalize_answer(a) for a in item.example.gold_answers()]
        ok = predicted in gold if gold else not predicted
        wording = "held_out_wording" if item.held_out_question else "train_wording"
        for key in ("all", item.kind, wording):
            right.setdefault(key, []).append(ok)
        if ok:
            continue
        if not predicted:
            counts["missed"] += 1
        elif item.kind == ABSENT:
            counts["absent_answered"] += 1
        elif predicted in {normalize_answer(v) for v in item.other_values}:
            counts["other_person_value"] += 1
        elif item.kind == UNSTATED:
            counts["unstated_answered"] += 1
        else:
            counts["wrong_span"] += 1
    report: dict[str, float] = {"count": len(right.get("all", []))}
    for key, oks in right.items():
        name = "exact_match" if key == "all" else f"em_{key}"
        report[name] = sum(oks) / len(oks)
    report.update(counts)
    return report
