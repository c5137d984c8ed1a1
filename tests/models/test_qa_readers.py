"""QA file readers: WebQA/SogouQA and SQuAD/CMRC JSON, and passage windows."""

from __future__ import annotations

import json

import pytest

from models.qa.readers import (
    Passage,
    QAExample,
    detect_format,
    read_qa_file,
    window_passages,
    write_webqa_file,
)

WEBQA = [
    {
        "question": "张伟住在哪里？",
        "passages": [
            {"passage": "张伟住在北京。", "answer": "北京"},
            {"passage": "王芳住在上海。", "answer": ""},
            {"passage": "李强是医生。", "answer": "no_answer"},
        ],
    },
    {"question": "谁是医生？", "passages": [{"passage": "没有人。", "answer": ""}]},
]
SQUAD = {
    "version": "v1.0",
    "data": [
        {
            "paragraphs": [
                {
                    "id": "P1",
                    "context": "北京是中国的首都。上海是最大的城市。",
                    "qas": [
                        {
                            "id": "Q1",
                            "question": "中国的首都是哪里？",
                            "answers": [
                                {"text": "北京", "answer_start": 0},
                                {"text": "北京市", "answer_start": 0},
                                {"text": "北京", "answer_start": 0},
                            ],
                        },
                        {"id": "Q2", "question": "有多少人？", "answers": []},
                    ],
                }
            ]
        }
    ],
}


def _write(path, document):
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def test_webqa_list_with_no_answer_markers(tmp_path):
    examples = read_qa_file(_write(tmp_path / "webqa.json", WEBQA))
    assert [e.question for e in examples] == ["张伟住在哪里？", "谁是医生？"]
    assert [p.answer for p in examples[0].passages] == ["北京", None, None]
    assert examples[0].gold_answers() == ["北京"]
    assert examples[1].gold_answers() == [] and not examples[1].has_answer


def test_webqa_dict_keyed_by_id_and_json_lines(tmp_path):
    keyed = read_qa_file(_write(tmp_path / "d.json", {"a1": WEBQA[0], "a2": WEBQA[1]}))
    assert [e.id for e in keyed] == ["a1", "a2"]
    lines = tmp_path / "l.jsonl"
    lines.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in WEBQA), encoding="utf-8")
    assert [e.question for e in read_qa_file(lines)] == ["张伟住在哪里？", "谁是医生？"]


def test_squad_cmrc_keeps_every_distinct_gold_answer(tmp_path):
    first, second = read_qa_file(_write(tmp_path / "cmrc.json", SQUAD))
    assert first.id == "Q1"
    assert first.passages == [Passage("北京是中国的首都。上海是最大的城市。", "北京", 0)]
    assert first.gold_answers() == ["北京", "北京市"]
    assert second.gold_answers() == [] and second.passages[0].answer is None


def test_unknown_format_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown QA format"):
        read_qa_file(_write(tmp_path / "x.json", [{"text": "hello"}]))
    assert detect_format({"data": []}) == "squad"


def test_written_webqa_reads_back(tmp_path):
    examples = read_qa_file(_write(tmp_path / "webqa.json", WEBQA))
    write_webqa_file(tmp_path / "out.json", examples)
    again = read_qa_file(tmp_path / "out.json")
    assert [(e.question, e.passages) for e in again] == [(e.question, e.passages) for e in examples]


def test_windows_cover_the_passage_and_mark_those_holding_the_answer():
    text = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳"  # 16 characters
    example = QAExample("q", [Passage(text, "庚辛", 6), Passage("短文", None)], answers=["庚辛"])
    windowed = window_passages(example, window_chars=6, stride_chars=4)
    texts = [p.text for p in windowed.passages]
    assert texts == [text[0:6], text[4:10], text[8:14], text[10:16], "短文"]
    assert [p.answer for p in windowed.passages] == [None, "庚辛", None, None, None]
    assert windowed.passages[1].answer_start == 2
    assert "".join(t[:4] for t in texts[:2]) + texts[2] + texts[3][-2:] == text
    assert windowed.gold_answers() == ["庚辛"]
    with pytest.raises(ValueError):
        window_passages(example, window_chars=4, stride_chars=5)
