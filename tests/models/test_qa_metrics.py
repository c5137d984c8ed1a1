"""Answer normalisation, exact match, character F1 and Final."""

from __future__ import annotations

import pytest

from models.qa.metrics import char_f1, evaluate, exact, normalize_answer, to_half_width
from models.qa.readers import Passage, QAExample


def test_normalize_maps_full_width_lowers_and_drops_punctuation_and_blanks():
    assert to_half_width("ＮＢＡ２０１９\u3000") == "NBA2019 "
    assert normalize_answer(" ＮＢＡ 总冠军。") == "nba总冠军"
    assert normalize_answer("《红楼梦》、“曹雪芹”!") == "红楼梦曹雪芹"
    assert normalize_answer("1,000-2,000") == "10002000"
    assert normalize_answer(None) == ""


def test_exact_after_normalisation_against_any_gold():
    assert exact("ＮＢＡ", ["nba", "美国职业篮球联赛"]) == 1.0
    assert exact("美国职业篮球联赛。", ["nba", "美国职业篮球联赛"]) == 1.0
    assert exact("篮球", ["nba"]) == 0.0


def test_null_answers():
    assert exact(None, []) == 1.0 and char_f1(None, []) == 1.0
    assert exact("", [""]) == 1.0
    assert exact("北京", []) == 0.0 and char_f1("北京", []) == 0.0
    assert exact(None, ["北京"]) == 0.0 and char_f1(None, ["北京"]) == 0.0


def test_char_f1_uses_the_longest_common_substring_and_the_best_gold():
    # pred "北京市", gold "北京": lcs 2, precision 2/3, recall 1 -> 0.8
    assert char_f1("北京市", ["北京"]) == pytest.approx(0.8)
    # characters in common but not contiguous count only by the longest run: "京北" vs "北京"
    assert char_f1("京北", ["北京"]) == pytest.approx(0.5)
    assert char_f1("上海", ["北京", "上海市"]) == pytest.approx(0.8)
    assert char_f1("广州", ["北京"]) == 0.0


def test_evaluate_accuracy_f1_and_final():
    examples = [
        QAExample("q1", [Passage("p", "北京")]),
        QAExample("q2", [Passage("p", None)]),
        QAExample("q3", [Passage("p", None)], answers=["上海", "上海市"]),
        QAExample("q4", [Passage("p", "北京")]),
    ]
    scores = evaluate(["北京", None, "上海市区", "广州"], examples)
    # q3: lcs 3 of "上海市区" vs "上海市": p 3/4, r 1 -> 6/7
    assert scores["accuracy"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx((1 + 1 + 6 / 7 + 0) / 4)
    assert scores["final"] == pytest.approx((scores["accuracy"] + scores["f1"]) / 2)
    assert scores["count"] == 4
    assert evaluate({0: "北京", 1: None}, examples[:2])["accuracy"] == 1.0
    with pytest.raises(ValueError):
        evaluate(["北京"], examples)
