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

import functools
import importlib.resources
import random
from collections import Counter
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

# Given names a passage refers back to by 她 (`pronoun_for`); the others by 他.
FEMALE_GIVEN_NAMES = frozenset(
    "芳 娜 敏 静 丽 艳 霞 玲 红 琳 秀英 雨欣 佳怡 海燕 桂兰 子涵 欣怡 美玲 若曦 诗涵 玉梅 "
    "慧敏".split()
)
PRONOUNS = ("他", "她")

# Answer kinds of a question (`LabelledExample.kind`).
ANSWERED = "answered"  # some passage states the asked fact of the person asked
UNSTATED = "unstated"  # a passage names the person, none states the fact for them
ABSENT = "absent"  # no passage names the person asked


@dataclass(frozen=True)
class Attribute:
    """One kind of fact: how a passage states it, how a question asks it, and its values.

    Attributes:
        name: short name of the attribute.
        statement: sentence template with `{name}` and `{value}`: the canonical statement, the
            only one unless `SyntheticConfig.statement_forms` asks for more.
        questions: question templates with `{name}`, used in training.
        values: the values it takes (the base pool).
        held_out_questions: more question templates, never used in training: paraphrases the
            held-out evaluation asks to see whether other wording is read.
        statements: more statement templates (`SyntheticConfig.statement_forms` "varied").
        held_out_statements: statement templates never used in training
            (`SyntheticConfig.held_out_statement_fraction`).
        clauses: the fact without the name ("住在{value}"), to join one person's facts into one
            compound sentence ("张伟住在北京，今年35岁，是一名医生。"; `compound_fraction`).
        held_out_clauses: clause templates never used in training.
        more_values: more values, for a wider pool (`SyntheticConfig.value_pool` "wide").
        held_out_values: values never used in training (`held_out_value_fraction`); made of
            characters the training material holds, so that an answer is in the vocabulary a
            model builds from its training data and what they test is reading, not spelling.
        own_values: real values typed by hand that no pool holds, as a user's own data are
            ("乌鲁木齐", "柯基犬"; `own_value_fraction`), never drawn in training; their
            characters are common ones (`common_characters`) that wide values
            (`wide_value_fraction`) are made of.
    """

    name: str
    statement: str
    questions: tuple[str, ...]
    values: tuple[str, ...]
    held_out_questions: tuple[str, ...] = ()
    statements: tuple[str, ...] = ()
    held_out_statements: tuple[str, ...] = ()
    clauses: tuple[str, ...] = ()
    held_out_clauses: tuple[str, ...] = ()
    more_values: tuple[str, ...] = ()
    held_out_values: tuple[str, ...] = ()
    own_values: tuple[str, ...] = ()


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
        statements=(
            "{name}家住{value}。",
            "{name}现在住在{value}。",
            "{name}在{value}生活。",
            "{name}居住在{value}。",
        ),
        held_out_statements=("{name}生活在{value}。", "{name}的家在{value}。", "{name}住{value}。"),
        clauses=("住在{value}", "家住{value}", "在{value}生活"),
        held_out_clauses=("生活在{value}", "家在{value}"),
        more_values=tuple(
            "合肥 南昌 福州 济南 太原 兰州 贵阳 南宁 海口 宁波 无锡 佛山 东莞 温州 "
            "徐州 大同".split()
        ),
        held_out_values=tuple("北海 长春 海宁 宁德 金华".split()),
        own_values=tuple(
            "乌鲁木齐 拉萨 呼和浩特 银川 西宁 桂林 三亚 丽江 洛阳 开封 "
            "扬州 绍兴 烟台 珠海 汕头 包头 秦皇岛".split()
        ),
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
        statements=(
            "{name}是一名{value}。",
            "{name}是一位{value}。",
            "{name}的工作是{value}。",
            "{name}是个{value}。",
        ),
        held_out_statements=(
            "{name}是{value}。",
            "{name}在做{value}。",
            "{name}从事{value}工作。",
        ),
        clauses=("是一名{value}", "职业是{value}", "是一位{value}"),
        held_out_clauses=("是{value}", "在做{value}"),
        more_values=tuple(
            "老板 学生 工人 编辑 翻译 导游 保安 主持人 摄影师 教练 法官 军人 "
            "快递员 售货员 电工 模特".split()
        ),
        held_out_values=tuple("老师 大厨 导演 画师 护工".split()),
        own_values=tuple(
            "外卖员 保洁员 理发师 园丁 消防员 销售员 客服 店长 药剂师 "
            "兽医 保姆 木匠 裁缝 出纳 主播 调酒师".split()
        ),
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
        statements=("{name}{value}岁。", "{name}已经{value}岁了。", "{name}的年龄是{value}岁。"),
        held_out_statements=(
            "{name}今年已经{value}岁。",
            "{name}年龄{value}岁。",
            "{name}现在{value}岁了。",
        ),
        clauses=("今年{value}岁", "{value}岁", "已经{value}岁了"),
        held_out_clauses=("年龄{value}岁", "现在{value}岁"),
        more_values=tuple(str(age) for age in range(12, 18)),
        held_out_values=tuple(str(age) for age in range(81, 96)),
        own_values=tuple(str(age) for age in (*range(3, 12), *range(96, 102))),
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
        statements=(
            "{name}平时喜欢{value}。",
            "{name}平时爱{value}。",
            "{name}最大的爱好是{value}。",
        ),
        held_out_statements=(
            "{name}爱{value}。",
            "{name}喜欢{value}。",
        ),
        clauses=("爱好是{value}", "平时喜欢{value}"),
        held_out_clauses=("爱{value}", "喜欢{value}"),
        more_values=tuple(
            "滑冰 打网球 看电影 弹吉他 养花 做饭 下象棋 打乒乓球 写诗 拉二胡".split()
        ),
        held_out_values=tuple("看书 弹琴 踢球 骑马".split()),
        own_values=tuple(
            "打羽毛球 玩游戏 听音乐 做瑜伽 打太极 滑雪 冲浪 攀岩 跳绳 "
            "养鱼 种菜 织毛衣 追剧 逛街 露营".split()
        ),
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
        statements=(
            "{name}是{value}年出生的。",
            "{name}{value}年出生。",
            "{name}出生在{value}年。",
        ),
        held_out_statements=("{name}生于{value}年。", "{name}是{value}年生的。"),
        clauses=("出生于{value}年", "{value}年出生"),
        held_out_clauses=("生于{value}年",),
        more_values=tuple(str(year) for year in range(1940, 1950)),
        held_out_values=tuple(str(year) for year in range(2006, 2016)),
        own_values=tuple(str(year) for year in range(1925, 1940)),
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
        statements=(
            "{name}家里养了一只{value}。",
            "{name}有一只{value}。",
            "{name}的宠物是一只{value}。",
        ),
        held_out_statements=("{name}家有一只{value}。", "{name}养的是一只{value}。"),
        clauses=("养了一只{value}", "家里养了一只{value}"),
        held_out_clauses=("养的是一只{value}", "有一只{value}"),
        more_values=tuple("小狗 小猫 八哥 松鼠 白鸽 蜥蜴".split()),
        held_out_values=tuple("小兔 白猫 黑狗 花猫".split()),
        own_values=tuple(
            "柯基犬 金毛 哈士奇 泰迪 布偶猫 橘猫 柴犬 龙猫 荷兰猪 孔雀鱼 "
            "变色龙 锦鲤 画眉 萨摩耶 蚕宝宝".split()
        ),
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
        statements=(
            "{name}是{value}毕业的。",
            "{name}从{value}毕业。",
            "{name}在{value}读的大学。",
        ),
        held_out_statements=("{name}大学读的是{value}。", "{name}{value}毕业。"),
        clauses=("毕业于{value}", "从{value}毕业"),
        held_out_clauses=("是{value}毕业的",),
        more_values=tuple(
            "山东大学 吉林大学 同济大学 天津大学 重庆大学 湖南大学 兰州大学 郑州大学".split()
        ),
        held_out_values=tuple("苏州大学 西南大学 青岛大学 深圳大学".split()),
        own_values=tuple(
            "北京师范大学 上海交通大学 华中科技大学 西北大学 东南大学 "
            "云南大学 广西大学 河海大学 暨南大学 中国人民大学 北京理工大学 "
            "南方科技大学 华南理工大学 西安交通大学 哈尔滨工业大学".split()
        ),
    ),  # fmt: skip
    Attribute(
        "color",
        "{name}最喜欢的颜色是{value}。",
        ("{name}最喜欢什么颜色？", "{name}最喜欢的颜色是什么？", "{name}喜欢什么颜色？"),
        tuple("红色 蓝色 绿色 黄色 紫色 白色 黑色 橙色 粉色 灰色".split()),
        ("{name}最爱什么颜色？", "{name}喜欢哪种颜色？"),
        statements=("{name}最喜欢{value}。", "{name}喜欢的颜色是{value}。"),
        held_out_statements=("{name}最爱{value}。", "{name}最喜爱{value}。"),
        clauses=("最喜欢的颜色是{value}", "最喜欢{value}"),
        held_out_clauses=("最爱{value}",),
        more_values=tuple("棕色 金色 银色 青色 米色".split()),
        held_out_values=tuple("天蓝色 深红色 深绿色 金黄色".split()),
        own_values=tuple(
            "藏青色 咖啡色 墨绿色 酒红色 浅蓝色 玫瑰红 宝蓝色 土黄色 "
            "湖蓝色 橄榄绿 奶白色 杏色 薄荷绿 珊瑚色 香槟色".split()
        ),
    ),  # fmt: skip
)

# How many characters `common_characters` keeps: the 4,000 most frequent GB2312 ones of jieba's
# dictionary hold every character of the hand-typed `Attribute.own_values` (3,000 lack 橘 鲤 暨 汕
# 槟 橄 榄, 2,500 even 犬).
COMMON_CHARACTER_COUNT = 4000
# Which characters names are drawn from (`SyntheticConfig.name_characters`).
NAME_CHARACTER_SETS = ("train", "held_out")
# Every how-many-th common character (by rank) is a held-out name character.
_HELD_OUT_NAME_EVERY = 10


@functools.cache
def common_characters(count: int = COMMON_CHARACTER_COUNT) -> tuple[str, ...]:
    """The `count` most common Chinese characters, most common first: those of GB2312 (no
    traditional forms, no mis-encoded entries) ranked by the summed frequency of the words of
    jieba's dictionary (a pinned dependency, shipped with it: no download) that hold them."""
    counts: Counter[str] = Counter()
    with (importlib.resources.files("jieba") / "dict.txt").open(encoding="utf-8") as f:
        for line in f:
            word, frequency, *_ = line.split()
            for char in word:
                if "\u4e00" <= char <= "\u9fff" and _in_gb2312(char):
                    counts[char] += int(frequency)
    ranked = sorted(counts, key=lambda c: (-counts[c], c))
    return tuple(ranked[:count])


def _in_gb2312(char: str) -> bool:
    try:
        char.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


# Characters of the templates (statements, clauses, questions, pronouns, punctuation): never in a
# wide name or value, so that no sentence reads two ways ("张在住在北京。").
_TEMPLATE_CHARACTERS = frozenset(
    "".join(
        t.replace("{name}", "").replace("{value}", "")
        for a in ATTRIBUTES
        for t in (
            a.statement,
            *a.statements,
            *a.held_out_statements,
            *a.clauses,
            *a.held_out_clauses,
            *a.questions,
            *a.held_out_questions,
        )
    )  # fmt: skip
    + "他她，。"
)


@functools.cache
def wide_characters() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training name characters, held-out name characters): the common characters
    (`common_characters`) but the templates'; every tenth by rank that no pool name
    (`SURNAMES`, `GIVEN_NAMES`) holds is held out, never in a training name (wide values are
    drawn from both, so that a held-out name's characters have trained embeddings: a name
    training never saw, not a character)."""
    pool_names = set(SURNAMES) | set("".join(GIVEN_NAMES))
    train: list[str] = []
    held_out: list[str] = []
    for rank, char in enumerate(common_characters()):
        if char in _TEMPLATE_CHARACTERS:
            continue
        if rank % _HELD_OUT_NAME_EVERY == _HELD_OUT_NAME_EVERY - 1 and char not in pool_names:
            held_out.append(char)
        else:
            train.append(char)
    return tuple(train), tuple(held_out)


def wide_name(rng: random.Random, split: str = "train") -> str:
    """A name of common characters: `split` "train": the surname from `SURNAMES` or (half the
    time) a training name character, then one or two of them; "held_out": a `SURNAMES` surname
    and one or two held-out name characters (`wide_characters`)."""
    train, held_out = wide_characters()
    if split == "held_out":
        return rng.choice(SURNAMES) + "".join(
            rng.choice(held_out) for _ in range(rng.randint(1, 2))
        )
    surname = rng.choice(SURNAMES) if rng.random() < 0.5 else rng.choice(train)
    return surname + "".join(rng.choice(train) for _ in range(rng.randint(1, 2)))


def wide_value(rng: random.Random, fact: Attribute) -> str:
    """A value of one to four common characters (`wide_characters`, both parts), none of the
    templates', never one of `fact`'s values of any pool: what is stated in the value's place
    is the answer, whatever its characters. Numbers (age, birth year) are drawn from their
    pool (`values`): a number of other characters is no age."""
    if all(v.isdigit() for v in fact.values):
        return rng.choice(fact.values)
    train, held_out = wide_characters()
    chars = train + held_out
    known = {*fact.values, *fact.more_values, *fact.held_out_values, *fact.own_values}
    while True:
        value = "".join(rng.choice(chars) for _ in range(rng.randint(1, 4)))
        if value not in known:
            return value


@functools.cache
def reserved_characters() -> tuple[str, ...]:
    """Common characters (`common_characters`) that no template, pool name or value of any pool
    (`values`, `more_values`, `held_out_values`, `own_values`) holds: the unknown characters of
    names and values drawn with `SyntheticConfig.unknown_name_fraction` and
    `unknown_value_fraction`, which a vocabulary built for placeholders leaves out
    (`training.qa.demo_vocab`), so that they are read as placeholders (`models.qa.placeholders`)."""
    taken = set(_TEMPLATE_CHARACTERS) | set(SURNAMES) | set("".join(GIVEN_NAMES))
    for a in ATTRIBUTES:
        taken.update("".join((*a.values, *a.more_values, *a.held_out_values, *a.own_values)))
    return tuple(c for c in common_characters() if c not in taken)


def latin_word(rng: random.Random) -> str:
    """A made-up Latin word of 2-8 letters, capitalised half the time ("Tom", "london")."""
    word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
    return word.capitalize() if rng.random() < 0.5 else word


def unknown_name(rng: random.Random) -> str:
    """A name a small vocabulary lacks some of: a `SURNAMES` surname and one or two reserved
    characters (`reserved_characters`; 40%), a two-character reserved surname and a pool given
    name (诸葛亮's kind; 20%), two or three reserved characters (20%), or a Latin word (Tom;
    20%)."""
    reserved = reserved_characters()
    draw = rng.random()
    if draw < 0.4:
        return rng.choice(SURNAMES) + "".join(
            rng.choice(reserved) for _ in range(rng.randint(1, 2))
        )
    if draw < 0.6:
        return rng.choice(reserved) + rng.choice(reserved) + rng.choice(GIVEN_NAMES)
    if draw < 0.8:
        return "".join(rng.choice(reserved) for _ in range(rng.randint(2, 3)))
    return latin_word(rng).capitalize()


def unknown_value(rng: random.Random, fact: Attribute) -> str | None:
    """A value of `fact` a small vocabulary lacks some of, or that no pool holds: a Latin word or
    two ("London", "New York"; 15%), one to four reserved characters (`reserved_characters`;
    15%), a value of the pools (`values`, `more_values`) with some of its characters reserved
    ones (外卖员's kind; 25%), one to four characters each reserved or one of any pool's
    (`known_characters`; 20%: 乌鲁木齐's kind, a known character first that starts no value of
    the pools), or a value of the pools with one or two characters before or after it, each
    reserved or known (墨绿色, 保洁员's kind; 25%: a known value inside is not the whole answer).
    None for numbers (age, birth year): their digits are every vocabulary's."""
    if all(v.isdigit() for v in fact.values):
        return None
    reserved = reserved_characters()
    draw = rng.random()
    if draw < 0.15:
        words = [latin_word(rng) for _ in range(1 if rng.random() < 0.7 else 2)]
        return " ".join(words)
    if draw < 0.3:
        return "".join(rng.choice(reserved) for _ in range(rng.randint(1, 4)))
    if draw < 0.75:
        if draw < 0.55:
            value = list(rng.choice(fact.values + fact.more_values))
        else:
            value = [rng.choice(known_characters()) for _ in range(rng.randint(1, 4))]
        swapped = [i for i in range(len(value)) if rng.random() < 0.5] or [
            rng.randrange(len(value))
        ]
        for i in swapped:
            value[i] = rng.choice(reserved)
        return "".join(value)
    known = fact.values + fact.more_values
    while True:
        side = rng.random()
        before = _affix(rng) if side < 0.67 else ""
        after = _affix(rng) if side >= 0.33 else ""
        framed = before + rng.choice(known) + after
        if framed not in {*known, *fact.held_out_values, *fact.own_values}:
            return framed


def _affix(rng: random.Random) -> str:
    """One or two characters, each reserved or known (`unknown_value`)."""
    reserved = reserved_characters()
    return "".join(
        rng.choice(reserved) if rng.random() < 0.5 else rng.choice(known_characters())
        for _ in range(rng.randint(1, 2))
    )


@functools.cache
def known_characters() -> tuple[str, ...]:
    """The characters of the pools' names and text values (`SURNAMES`, `GIVEN_NAMES`, `values`
    and `more_values`) but the templates' and digits: what a vocabulary built from the data
    knows beside the templates."""
    chars = set(SURNAMES) | set("".join(GIVEN_NAMES))
    for a in ATTRIBUTES:
        chars.update("".join((*a.values, *a.more_values)))
    return tuple(sorted(c for c in chars if c not in _TEMPLATE_CHARACTERS and not c.isdigit()))


# Kinds of distractor text (`noise_snippet`), one drawn a snippet.
NOISE_KINDS = ("note", "code", "latin", "special", "number")
# Text that looks like a tokenizer's special tokens, as users paste it (a literal "[SEP]" is read
# as its characters, never as the token).
_SPECIAL_TEXT = ("[SEP]", "[MASK]", "[UNK]", "[CLS]", "[PAD]", "<s>", "</s>", "<unk>", "<pad>")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def noise_snippet(rng: random.Random) -> str:
    """Distractor text a passage may hold between its sentences, stating no fact: a note marker
    ("[注1]", "[3]", "（注）", "(见附录A)", a note of reserved characters), an ID or code
    ("ID: A123。", "编号：B-2041。"), a short Latin sentence ("Tom lives here.", made-up words of
    `latin_word`), special-token-looking text ("[SEP]", "[MASK]") or a number ("(12)", "3.14",
    "2024-03-15")."""
    kind = rng.choice(NOISE_KINDS)
    n = rng.randint(1, 20)
    letter = rng.choice(_LETTERS)
    if kind == "note":
        return rng.choice((
            f"[注{n}]", f"[{n}]", "（注）", f"（注{n}）", f"(见附录{letter})", f"【{n}】",
            f"（见第{n}页）", f"(see note {n})", "*",
            "（" + "".join(rng.choice(reserved_characters()) for _ in range(rng.randint(2, 4)))
            + "）",
        ))  # fmt: skip
    if kind == "code":
        digits = str(rng.randint(100, 99999))
        return rng.choice((
            f"ID: {letter}{digits}。", f"编号：{letter}-{digits}。", f"No. {digits}",
            f"#{digits}", f"工号：{digits}。", f"订单号：{letter}{letter}{digits}。",
            f"ID：{digits}",
        ))  # fmt: skip
    if kind == "latin":
        if rng.random() < 0.25:
            return rng.choice(("Tom lives here.", "See the appendix.", "Page 2 of 5.", "N/A"))
        words = [latin_word(rng) for _ in range(rng.randint(1, 4))]
        return " ".join([words[0].capitalize(), *words[1:]]) + rng.choice((".", ".", "!", ""))
    if kind == "special":
        return "".join(rng.choice(_SPECIAL_TEXT) for _ in range(rng.randint(1, 3)))
    return rng.choice((
        f"({n})", f"{rng.randint(1, 9)}.{rng.randint(0, 99)}",
        f"{rng.randint(2000, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        f"第{n}页", f"{n}/{rng.randint(n, 40)}", str(rng.randint(100, 99999)),
    ))  # fmt: skip


def _insert_noise(rng: random.Random, sentences: list[str], facts: _Facts) -> None:
    """Puts one to three snippets (`noise_snippet`) at sentence boundaries of `sentences` (in
    place): none holds a value of `facts` or names a person of them (cased or not: an uncased
    tokenizer reads "Tom" and "tom" alike), so what the passage states is unchanged."""
    names = [who.lower() for who in facts]
    values = [v for f in facts.values() for v in f.values() if v]
    for _ in range(rng.randint(1, 3)):
        while True:
            snippet = noise_snippet(rng)
            lowered = snippet.lower()
            if not any(v in snippet for v in values) and not any(w in lowered for w in names):
                break
        sentences.insert(rng.randint(0, len(sentences)), snippet)


def _is_han(text: str) -> bool:
    return all("\u4e00" <= c <= "\u9fff" for c in text)


# Which templates questions are drawn from (`SyntheticConfig.questions`).
QUESTION_SETS = ("train", "held_out", "all")
# Which statement templates passages use (`SyntheticConfig.statement_forms`).
STATEMENT_FORMS = ("canonical", "varied")
# Which values facts take (`SyntheticConfig.value_pool`).
VALUE_POOLS = ("base", "wide")


@dataclass(frozen=True)
class SyntheticConfig:
    """How the synthetic data are drawn.

    The defaults of the wording knobs (`statement_forms` to `empty_value_fraction`) draw what
    the generator drew before they existed, the same examples for the same seed.

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
        statement_forms: "canonical" (`Attribute.statement` only) or "varied" (it and
            `Attribute.statements`, one drawn a sentence).
        compound_fraction: chance that a person with two facts or more has them stated in one
            sentence, the name once and the facts as clauses (`Attribute.clauses`) joined by
            "，" ("刘敏是一名教师，住在苏州。").
        held_out_statement_fraction: chance that a sentence (or clause) takes a held-out form
            (`Attribute.held_out_statements`, `Attribute.held_out_clauses`) instead.
        value_pool: "base" (`Attribute.values`) or "wide" (with `Attribute.more_values`).
        held_out_value_fraction: chance that a value is drawn from `Attribute.held_out_values`
            instead.
        nonce_value_fraction: chance that a value is made up (`nonce_value`): what a passage
            states in the value's place is the answer whether or not it is a known word, so
            that the values' lexicon alone does not tell where an answer ends.
        empty_value_fraction: for a question no passage answers, chance that a passage naming
            the person asked also holds the fact's sentence with no value ("张伟住在。"): still
            no answer.
        pronoun_fraction: chance that a person with two facts or more refers back by 他/她
            (`pronoun_for`) after the named first statement, in a run of one or more of their
            other facts: in a compound sentence those clauses have the pronoun as their subject
            ("李梅最喜欢的颜色是蓝色，她养了一只猫。"); as separate sentences, they follow the named
            sentence as pronoun sentences, kept next to it through the shuffle ("张伟住在北京。
            他今年35岁。"), so a pronoun always refers to the person named just before it. With it
            (above 0) each person's facts are also stated in a drawn order, so that the fact
            asked is as often a later (pronoun) one as any other.
        wide_name_fraction: chance that a name is drawn of common characters (`wide_name`)
            rather than from `SURNAMES` and `GIVEN_NAMES`, so that a name is matched by its
            characters, whatever they are, not known as one of a list.
        name_characters: which common characters those names take: "train" or "held_out"
            (`wide_characters`; held-out evaluation only).
        wide_value_fraction: chance that a value is drawn of common characters (`wide_value`):
            a value's end is where the sentence says it is, not where a known value ends.
        own_value_fraction: chance that a value is one of `Attribute.own_values` (held-out
            evaluation only).
        unknown_name_fraction: chance that a name holds text a small vocabulary lacks
            (`unknown_name`: reserved characters, a Latin word), for a model that reads unknown
            words as placeholders (`models.qa.placeholders`).
        unknown_value_fraction: chance that a text value does (`unknown_value`).
        noise_fraction: chance that a passage holds distractor text (`noise_snippet`: note
            markers, IDs, a Latin sentence, special-token-looking text, numbers) at one to three
            of its sentence boundaries (start, between sentences, end), and, for each example,
            a quarter of it that one more passage is nothing but such text (no answer). The
            text states no fact and names nobody of the example, so every answer stays as it is;
            it is drawn from a random source seeded by the passages' text, so the examples are
            those drawn without it (the same seed), with the distractors put in.
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
    statement_forms: str = "canonical"
    compound_fraction: float = 0.0
    held_out_statement_fraction: float = 0.0
    value_pool: str = "base"
    held_out_value_fraction: float = 0.0
    nonce_value_fraction: float = 0.0
    empty_value_fraction: float = 0.0
    pronoun_fraction: float = 0.0
    wide_name_fraction: float = 0.0
    name_characters: str = "train"
    wide_value_fraction: float = 0.0
    own_value_fraction: float = 0.0
    unknown_name_fraction: float = 0.0
    unknown_value_fraction: float = 0.0
    noise_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.questions not in QUESTION_SETS:
            raise ValueError(f"questions must be one of {QUESTION_SETS}, not {self.questions!r}")
        if self.statement_forms not in STATEMENT_FORMS:
            raise ValueError(
                f"statement_forms must be one of {STATEMENT_FORMS}, not {self.statement_forms!r}"
            )
        if self.value_pool not in VALUE_POOLS:
            raise ValueError(f"value_pool must be one of {VALUE_POOLS}, not {self.value_pool!r}")
        if self.name_characters not in NAME_CHARACTER_SETS:
            raise ValueError(
                f"name_characters must be one of {NAME_CHARACTER_SETS}, "
                f"not {self.name_characters!r}"
            )
        for knob in ("compound_fraction", "held_out_statement_fraction",
                     "held_out_value_fraction", "nonce_value_fraction",
                     "empty_value_fraction", "pronoun_fraction", "wide_name_fraction",
                     "wide_value_fraction", "own_value_fraction", "unknown_name_fraction",
                     "unknown_value_fraction", "noise_fraction"):  # fmt: skip
            if not 0.0 <= getattr(self, knob) <= 1.0:
                raise ValueError(f"{knob} must be in [0, 1], not {getattr(self, knob)!r}")


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
        held_out_statement: every statement of the answer is in a held-out form
            (`Attribute.held_out_statements` or `held_out_clauses`).
        compound: some statement of the answer is a clause of a compound sentence.
        held_out_value: the answer is one of `Attribute.held_out_values`.
        empty_value: a passage holds the asked fact's sentence for the person asked with no
            value ("张伟住在。"; unanswered questions only).
        pronoun: some statement of the answer has a pronoun (他/她) for its subject
            (`SyntheticConfig.pronoun_fraction`).
        own_value: the answer is one of `Attribute.own_values`.
        wide_name: the person asked has a name of common characters (`wide_name`).
        noise: some passage holds distractor text (`SyntheticConfig.noise_fraction`).
    """

    example: QAExample
    kind: str
    person: str
    attribute: str
    held_out_question: bool
    other_values: frozenset[str]
    held_out_statement: bool = False
    compound: bool = False
    held_out_value: bool = False
    empty_value: bool = False
    pronoun: bool = False
    own_value: bool = False
    wide_name: bool = False
    noise: bool = False


# Facts of one passage: person -> {attribute name: value}.
_Facts = dict[str, dict[str, str]]
_BY_NAME = {attribute.name: attribute for attribute in ATTRIBUTES}


@dataclass(frozen=True)
class _Drawn:
    """A passage drawn, its facts, and how it states the fact asked of the person asked."""

    text: str
    facts: _Facts
    held_out_form: bool = False  # the statement is in a held-out form
    compound: bool = False  # a clause of a compound sentence
    empty: bool = False  # the fact's sentence with no value
    pronoun: bool = False  # a pronoun (他/她) is the statement's subject
    sentences: tuple[str, ...] = ()  # the text's sentences (a pronoun run as one)


def _clashes(name: str, taken: Sequence[str]) -> bool:
    """Equal to, or a prefix of, a name taken (so "张伟" never hides in "张伟华")."""
    return any(name.startswith(p) or p.startswith(name) for p in taken)


def _draw_people(
    rng: random.Random,
    count: int,
    avoid: Sequence[str] = (),
    like: str | None = None,
    similar_fraction: float = 0.0,
    config: SyntheticConfig = SyntheticConfig(),  # noqa: B008 (frozen: one shared default)
) -> list[str]:
    """Distinct names of which none is a prefix of another or of one in `avoid`; each shares the
    surname or the given name of `like` (a name of Chinese characters) with probability
    `similar_fraction`, else holds unknown text with probability `config.unknown_name_fraction`
    (`unknown_name`), else is drawn of common characters with probability
    `config.wide_name_fraction`."""
    people: list[str] = []
    wide = config.wide_name_fraction
    while len(people) < count:
        if like is not None and _is_han(like) and rng.random() < similar_fraction:
            if rng.random() < 0.5:
                name = like[0] + rng.choice(GIVEN_NAMES)
            else:
                name = rng.choice(SURNAMES) + like[1:]
        elif config.unknown_name_fraction and rng.random() < config.unknown_name_fraction:
            name = unknown_name(rng)
        elif wide and rng.random() < wide:
            name = wide_name(rng, config.name_characters)
        else:
            name = rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)
        if not _clashes(name, [*people, *avoid]):
            people.append(name)
    return people


def pronoun_for(name: str) -> str:
    """The pronoun a passage refers back to `name` by: 她 for a given name in
    `FEMALE_GIVEN_NAMES`, else 他 (no draw: the same name gets the same pronoun)."""
    return PRONOUNS[1] if name[1:] in FEMALE_GIVEN_NAMES else PRONOUNS[0]


def nonce_value(rng: random.Random, fact: Attribute) -> str:
    """A made-up value of `fact`: as long as one of its values, of the characters its values
    (`values`, `more_values`) are made of ("州京", "2731"), never one of `held_out_values`."""
    pool = fact.values + fact.more_values
    chars = sorted(set("".join(pool)))
    while True:
        value = "".join(rng.choice(chars) for _ in rng.choice(pool))
        if value not in fact.held_out_values:
            return value


def _draw_value(rng: random.Random, config: SyntheticConfig, fact: Attribute) -> str:
    """A value of `fact` (no draw but `rng.choice(fact.values)` with the default knobs)."""
    if config.own_value_fraction and fact.own_values and rng.random() < config.own_value_fraction:
        return rng.choice(fact.own_values)
    if config.unknown_value_fraction and rng.random() < config.unknown_value_fraction:
        value = unknown_value(rng, fact)
        if value is not None:
            return value
    if config.wide_value_fraction and rng.random() < config.wide_value_fraction:
        return wide_value(rng, fact)
    if config.nonce_value_fraction and rng.random() < config.nonce_value_fraction:
        return nonce_value(rng, fact)
    if (
        config.held_out_value_fraction
        and fact.held_out_values
        and rng.random() < config.held_out_value_fraction
    ):
        return rng.choice(fact.held_out_values)
    if config.value_pool == "wide":
        return rng.choice(fact.values + fact.more_values)
    return rng.choice(fact.values)


def _draw_form(
    rng: random.Random, config: SyntheticConfig, fact: Attribute, clause: bool
) -> tuple[str, bool]:
    """(a statement or clause template of `fact`, whether it is a held-out one); no draw with
    the default knobs."""
    if config.held_out_statement_fraction and rng.random() < config.held_out_statement_fraction:
        held_out = fact.held_out_clauses if clause else fact.held_out_statements
        if held_out:
            return rng.choice(held_out), True
    if clause:
        return rng.choice(fact.clauses), False
    if config.statement_forms == "varied":
        return rng.choice((fact.statement, *fact.statements)), False
    return fact.statement, False


def _draw_passage(
    rng: random.Random,
    config: SyntheticConfig,
    person: str,
    attribute: Attribute,
    asked: str | None,
    avoid: Sequence[str],
    value: str | None = None,
) -> _Drawn:
    """A passage about 1-3 people and its facts.

    Args:
        rng: the random source.
        config: how passages are drawn.
        person: the person asked about (their name is avoided when `asked` is None).
        attribute: the fact asked.
        asked: None (the passage does not name `person`), "with" (it states `attribute` of
            `person`) or "without" (it names `person` but does not state `attribute` of them).
        avoid: more names not to use.
        value: with `asked` "with", the value it states (another passage's answer, which this
            one agrees with); None: drawn.
    """
    count = rng.randint(*config.people_per_passage)
    named = [person] if asked else []
    others = _draw_people(
        rng,
        count - len(named),
        avoid=[person, *avoid],
        like=person,
        similar_fraction=config.similar_name_fraction,
        config=config,
    )
    facts: _Facts = {}
    sentences: list[str] = []
    held_out_form = compound = empty = pronoun = False
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
            facts[who][fact.name] = _draw_value(rng, config, fact)
        if who == person and value is not None and attribute.name in facts[who]:
            facts[who][attribute.name] = value
        joined = (
            config.compound_fraction > 0
            and len(chosen) >= 2
            and rng.random() < config.compound_fraction
        )
        # How many of the facts after the first refer back by a pronoun (none: every statement
        # names the person); no draw with the default knobs.
        referring = 0
        if config.pronoun_fraction:
            rng.shuffle(chosen)
            if len(chosen) >= 2 and rng.random() < config.pronoun_fraction:
                referring = rng.randint(1, len(chosen) - 1)
        clauses = []
        run: list[str] = []  # the named sentence and the pronoun sentences that follow it
        for i, fact in enumerate(chosen):
            template, held_out = _draw_form(rng, config, fact, clause=joined)
            by_pronoun = 1 <= i <= referring
            subject = pronoun_for(who) if by_pronoun else who
            if joined:
                text = template.format(name=who, value=facts[who][fact.name])
                clauses.append(pronoun_for(who) + text if by_pronoun else text)
            else:
                text = template.format(name=subject, value=facts[who][fact.name])
                (run if referring and i <= referring else sentences).append(text)
            if who == person and fact is attribute:
                held_out_form, compound, pronoun = held_out, joined, by_pronoun
        if joined:
            sentences.append(who + "，".join(clauses) + "。")
        elif run:
            sentences.append("".join(run))
        if (
            who == person
            and asked == "without"
            and value is None
            and config.empty_value_fraction
            and rng.random() < config.empty_value_fraction
        ):
            # The fact's sentence with its value missing (a user's slip): no answer.
            template, _ = _draw_form(rng, config, attribute, clause=False)
            sentences.append(template.format(name=who, value=""))
            empty = True
    # Facts of different people interleave, so the answer is not always next to the name's
    # first mention.
    rng.shuffle(sentences)
    return _Drawn(
        "".join(sentences), facts, held_out_form, compound, empty, pronoun, tuple(sentences)
    )


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
    person = _draw_people(rng, 1, config=config)[0]
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
    value = drawn[0].facts[person][attribute.name] if kind == ANSWERED else None
    for _ in range(n_passages - 1):
        # Other passages: about the same person with other facts (or agreeing on the fact
        # asked), or about other people.
        asked: str | None = None
        if kind != ABSENT and rng.random() < config.same_person_fraction:
            asked = "with" if kind == ANSWERED and rng.random() < 0.5 else "without"
        avoid = [p for d in drawn for p in d.facts if p != person]
        # Another source that states the fact agrees: several passages hold the same answer.
        drawn.append(_draw_passage(rng, config, person, attribute, asked, avoid=avoid, value=value))
    texts = [d.text for d in drawn]
    noisy = False
    if config.noise_fraction:
        # Distractors drawn from the passages' own text, not `rng`: the same examples as
        # without noise. None holds a value or a name of the example's facts.
        every = {who: f for d in drawn for who, f in d.facts.items()}
        every.setdefault(person, {})
        for i, d in enumerate(drawn):
            noise_rng = random.Random("noise " + d.text)
            if noise_rng.random() < config.noise_fraction:
                sentences = list(d.sentences)
                _insert_noise(noise_rng, sentences, every)
                texts[i] = "".join(sentences)
                noisy = True
    passages = [
        Passage(text, d.facts.get(person, {}).get(attribute.name))
        for text, d in zip(texts, drawn, strict=True)
    ]
    rng.shuffle(passages)
    noise_passage = False
    if config.noise_fraction:
        # A passage of distractor text only (a search result's boilerplate; no answer).
        noise_rng = random.Random("noise " + "\n".join(p.text for p in passages))
        noise_passage = noise_rng.random() < config.noise_fraction / 4
        if noise_passage:
            snippets: list[str] = []
            _insert_noise(noise_rng, snippets, every)
            passages.insert(noise_rng.randint(0, len(passages)), Passage("".join(snippets), None))
    other_values = frozenset(
        f[attribute.name]
        for d in drawn
        for who, f in d.facts.items()
        if who != person and attribute.name in f
    )
    stating = [d for d in drawn if attribute.name in d.facts.get(person, {})]
    question, held_out = _question(rng, config, person, attribute)
    return LabelledExample(
        QAExample(question=question, passages=passages),
        kind,
        person,
        attribute.name,
        held_out,
        other_values,
        held_out_statement=bool(stating) and all(d.held_out_form for d in stating),
        compound=any(d.compound for d in stating),
        held_out_value=value is not None and value in attribute.held_out_values,
        empty_value=any(d.empty for d in drawn),
        pronoun=any(d.pronoun for d in stating),
        own_value=value is not None and value in attribute.own_values,
        wide_name=person[1:] not in GIVEN_NAMES,
        noise=noisy or noise_passage,
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


# `LabelledExample` flags that `error_breakdown` scores the questions of apart.
_FLAGS = ("held_out_statement", "compound", "held_out_value", "empty_value", "pronoun",
          "own_value", "wide_name", "noise")  # fmt: skip


def error_breakdown(
    labelled: Sequence[LabelledExample], predictions: Sequence[str | None]
) -> dict[str, float]:
    """Exact match of `predictions` and what the wrong ones are (answers compared as
    `models.qa.metrics.normalize_answer` does).

    Returns:
        "count", "exact_match"; exact match per kind ("em_answered", "em_unstated",
        "em_absent") and per question wording ("em_train_wording", "em_held_out_wording", over
        the questions of each); per statement of the answer or passage ("em_held_out_statement",
        "em_compound", "em_held_out_value", "em_empty_value", "em_pronoun", "em_own_value",
        "em_wide_name": over the questions so labelled, present only when some are); error
        counts: "absent_answered" (any answer for a person no passage names),
        "other_person_value" (for a person a passage names, the value the passages state for
        somebody else),
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
        groups = ["all", item.kind, wording]
        groups += [key for key in _FLAGS if getattr(item, key)]
        for key in groups:
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
