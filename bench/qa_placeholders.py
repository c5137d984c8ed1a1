"""What placeholders for unknown words cost a QA request's tokenisation: the question and its
passages read as `models.qa.decoding.answer_questions` reads them, with the plain tokenizer and
through `PlaceholderMap.assign` (models/qa/placeholders.py), side by side.

    .venv/bin/python bench/qa_placeholders.py --model model_store/demo-qa/1 [--rounds 15]

`--model` is a version trained with placeholders (its vocabulary holds them; the demo's). The
requests: the demo's kind (3 short passages), three 500-character passages of everyday prose
(which hold many characters outside the demo's vocabulary), and one passage of MAX_TEXT_CHARS
(8,192). Each round times both ways on the same request in turn, alternating which goes first;
prints each one's median time per request and the median and quartiles of the per-round ratio
(placeholders / plain). CPU time of this thread. The model's own calls, milliseconds a request,
are not in either.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.paired import paired_row  # noqa: E402
from models.bert.tokenizer import BertTokenizer  # noqa: E402
from models.qa.placeholders import DEFAULT_PLACEHOLDER_COUNT, PlaceholderMap  # noqa: E402

PROSE = (
    "杭州是浙江省的省会，西湖在城市的西边，春天的时候湖边开满了桃花和柳树，游客从全国各地赶来。"
    "李雷住在乌鲁木齐，去年搬到了成都，现在在一家外卖公司做骑手，每天早上七点出门，晚上九点回家。"
    "他养了一只柯基犬，名字叫豆豆，周末常常带它去公园散步，也喜欢和朋友一起去爬山、钓鱼。"
)


def requests() -> dict[str, tuple[str, list[str]]]:
    return {
        "demo: 3 short passages": (
            "张伟住在哪里？",
            ["张伟今年35岁。张伟住在北京。", "张伟的职业是医生。", "李娜住在上海。"],
        ),
        "3 passages of 500 characters of prose": (
            "李雷住在哪里？",
            [(PROSE * 4)[start : start + 500] for start in (0, 40, 80)],
        ),
        "1 passage of 8,192 characters": ("李雷住在哪里？", [(PROSE * 40)[:8192]]),
    }


def plain(tokenizer: BertTokenizer, question: str, passages: Sequence[str]) -> None:
    tokenizer.piece_ids(question)
    for passage in passages:
        tokenizer.piece_ids_with_offsets(passage)


def mapped(mapper: PlaceholderMap, question: str, passages: Sequence[str]) -> None:
    mapping = mapper.assign(question, passages)
    mapping.piece_ids(question)
    for passage in passages:
        mapping.piece_ids_with_offsets(passage)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    tokenizer = BertTokenizer(str(args.model / "assets" / "vocab.txt"))
    mapper = PlaceholderMap(tokenizer, DEFAULT_PLACEHOLDER_COUNT)

    print(f"| request | plain | placeholders | ratio, median (quartiles) of {args.rounds} |")
    print("|---|---|---|---|")
    for name, (question, passages) in requests().items():
        repeat = max(1, 200_000 // sum(map(len, passages)))
        row = paired_row(
            lambda q=question, p=passages: plain(tokenizer, q, p),
            lambda q=question, p=passages: mapped(mapper, q, p),
            args.rounds,
            repeat,
        )
        print(f"| {name} | {row} |")


if __name__ == "__main__":
    main()
