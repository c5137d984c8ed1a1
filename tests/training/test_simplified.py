"""training.simplified: DRCD-style SQuAD files to Simplified Chinese with the answers still at
their offsets, also where the conversion changes a context's length."""

from __future__ import annotations

import json

import pytest

from training.simplified import convert_squad, main


class _Table:
    """A made-up converter: 們 -> 们 (same length) and the phrase 臺灣省 -> 台湾 (one shorter)."""

    def convert(self, text: str) -> str:
        return text.replace("臺灣省", "台湾").replace("們", "们")


def _squad(context: str, *answers: tuple[str, int]) -> dict:
    qas = [
        {"id": str(i), "question": f"問題{i}們", "answers": [{"text": t, "answer_start": s}]}
        for i, (t, s) in enumerate(answers)
    ]
    return {
        "version": "x",
        "data": [{"title": "們", "paragraphs": [{"context": context, "qas": qas}]}],
    }


def _answers(data: dict) -> list[tuple[str, int, str]]:
    paragraph = data["data"][0]["paragraphs"][0]
    out = []
    for qa in paragraph["qas"]:
        for a in qa["answers"]:
            start = a["answer_start"]
            out.append((a["text"], start, paragraph["context"][start : start + len(a["text"])]))
    return out


def test_same_length_conversion_keeps_offsets():
    data = _squad("我們去北京，他們去上海。", ("他們", 6), ("上海", 9))
    converted, counts = convert_squad(data, _Table())
    assert [(t, s) for t, s, _ in _answers(converted)] == [("他们", 6), ("上海", 9)]
    assert all(text == span for text, _, span in _answers(converted))
    assert converted["data"][0]["title"] == "们"
    assert converted["data"][0]["paragraphs"][0]["qas"][0]["question"] == "問題0们"
    assert counts.contexts_length_changed == 0 and counts.answers_moved == 0


def test_a_shorter_phrase_moves_the_answers_after_it_and_unfound_ones_are_dropped():
    context = "他們住在臺灣省，我們住在北京。"
    data = _squad(context, ("北京", 12), ("他們", 0), ("灣省", 5))
    converted, counts = convert_squad(data, _Table())
    # 北京 moves one to the left; 他们 before the phrase stays; "灣省" -> "灣省" is not in "台湾"
    assert [(t, s) for t, s, _ in _answers(converted)] == [("北京", 11), ("他们", 0)]
    assert all(text == span for text, _, span in _answers(converted))
    assert counts.contexts_length_changed == 1
    assert counts.answers_moved == 1 and counts.answers_dropped == 1
    assert counts.questions_dropped == 1 and counts.questions == 3


def test_opencc_converts_a_drcd_paragraph(tmp_path):
    pytest.importorskip("opencc")
    context = "在歐洲，梵語的學術研究，由德國學者陸特和漢斯雷頓開創。"
    source = tmp_path / "drcd.json"
    source.write_text(
        json.dumps(_squad(context, ("歐洲", 1), ("德國學者", 13)), ensure_ascii=False),
        encoding="utf-8",
    )
    counts = main([str(source), str(tmp_path / "out.json")])
    converted = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert converted["data"][0]["paragraphs"][0]["context"] == (
        "在欧洲，梵语的学术研究，由德国学者陆特和汉斯雷顿开创。"
    )
    assert [(t, s) for t, s, _ in _answers(converted)] == [("欧洲", 1), ("德国学者", 13)]
    assert counts.answers_dropped == 0
