"""Reading passages sentence by sentence (`models.qa.sentences`, `answer_questions(read_by=)`):
where sentences end, which join, and a reader that lends one person's fact to another when it
reads them in one row answering right when each sentence is a row of its own."""

from __future__ import annotations

import numpy as np
import pytest

from models.bert.tokenizer import BertTokenizer
from models.qa.decoding import answer_questions
from models.qa.readers import Passage, QAExample
from models.qa.sentences import sentence_spans, sentence_token_ranges
from tests.models.test_qa_decoding import CachedFake
from training.qa_eval import evaluate_examples


def _sentences(text: str) -> list[str]:
    spans = sentence_spans(text)
    # the spans cover the text in order, with no gap and no overlap
    assert [s for s, _ in spans] == [0, *(e for _, e in spans)][: len(spans)]
    assert (spans[-1][1] if spans else 0) == len(text)
    return [text[s:e] for s, e in spans]


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("王芳住在上海。张伟住在北京。", ["王芳住在上海。", "张伟住在北京。"]),
        ("真的吗？！是的。", ["真的吗？！", "是的。"]),
        ("他说：“走吧。”王芳点头。", ["他说：“走吧。”", "王芳点头。"]),
        ("张伟住在北京，今年35岁，是一名医生。", ["张伟住在北京，今年35岁，是一名医生。"]),
        ("张伟的身高是1.75米。王芳1.6米", ["张伟的身高是1.75米。", "王芳1.6米"]),
        (
            "Tom lives in London. Ann is 3.5 years old.",
            ["Tom lives in London. ", "Ann is 3.5 years old."],
        ),
        ("第一行\n第二行", ["第一行\n", "第二行"]),
        ("张伟住在北京。\n\n王芳住在上海。", ["张伟住在北京。\n\n", "王芳住在上海。"]),
        ("没有句号", ["没有句号"]),
        ("", []),
    ],
)  # fmt: skip
def test_sentences_end_at_their_final_punctuation_not_at_a_decimal_point(text, sentences):
    assert _sentences(text) == sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        (
            "张伟住在北京。他今年35岁。王芳住在上海。",
            ["张伟住在北京。他今年35岁。", "王芳住在上海。"],
        ),
        ("王芳是护士。她们都住在上海。", ["王芳是护士。她们都住在上海。"]),
        ("张伟养了一只猫。它叫咪咪。", ["张伟养了一只猫。它叫咪咪。"]),
        (
            "Tom lives in London. He is 35. Ann is 28.",
            ["Tom lives in London. He is 35. ", "Ann is 28."],
        ),
        ("Tom is here. Hence no.", ["Tom is here. ", "Hence no."]),
        # invisible characters the tokenizer drops (a zero-width space, a byte-order mark) do not
        # hide the pronoun, nor make a sentence of their own between it and its name
        (
            "张伟住在北京。\u200b他今年35岁。王芳住在上海。",
            ["张伟住在北京。\u200b他今年35岁。", "王芳住在上海。"],
        ),
        ("张伟住在北京。\ufeff\n他今年35岁。", ["张伟住在北京。\ufeff\n他今年35岁。"]),
    ],
)  # fmt: skip
def test_a_sentence_that_starts_with_a_pronoun_continues_the_one_before(text, sentences):
    assert _sentences(text) == sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        # Chinese typed with half-width (or full-width) stops: no blank after them
        ("王芳住在上海.张伟住在北京.", ["王芳住在上海.", "张伟住在北京."]),
        ("王芳住在上海．张伟住在北京．", ["王芳住在上海．", "张伟住在北京．"]),
        ("王芳住在上海｡张伟住在北京｡", ["王芳住在上海｡", "张伟住在北京｡"]),
        (
            "王芳住在上海.“张伟住在北京.”他笑了.李娜",
            ["王芳住在上海.", "“张伟住在北京.”他笑了.", "李娜"],
        ),
        # a decimal point, full-width digits too, and a domain name stay inside their sentence
        ("张伟的身高是1.75米", ["张伟的身高是1.75米"]),
        ("张伟的身高是１．７５米", ["张伟的身高是１．７５米"]),
        ("见www.example.com网站", ["见www.example.com网站"]),
    ],
)  # fmt: skip
def test_a_full_stop_of_either_width_before_chinese_ends_a_sentence(text, sentences):
    assert _sentences(text) == sentences


def test_a_line_break_of_any_kind_ends_a_sentence():
    assert _sentences("王芳住在上海\r张伟住在北京") == ["王芳住在上海\r", "张伟住在北京"]
    assert _sentences("王芳住在上海\u2028张伟住在北京") == ["王芳住在上海\u2028", "张伟住在北京"]
    assert _sentences("王芳住在上海\r\n张伟住在北京") == ["王芳住在上海\r\n", "张伟住在北京"]


def test_a_pronoun_opening_the_text_has_nothing_to_join():
    assert _sentences("他住在北京。张伟住在上海。") == ["他住在北京。", "张伟住在上海。"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> BertTokenizer:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"北京上海张伟王芳住在哪里？。他"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return BertTokenizer(path)


def test_tokens_belong_to_the_sentence_their_first_character_is_in(tokenizer):
    text = " 王芳住在上海。 张伟住在北京。  "
    ids, offsets = tokenizer.piece_ids_with_offsets(text)
    ranges = sentence_token_ranges(text, offsets)
    assert ranges == [(0, 7), (7, 14)]
    assert [text[offsets[a][0] : offsets[b - 1][1]] for a, b in ranges] == [
        "王芳住在上海。",
        "张伟住在北京。",
    ]
    # a text of blanks has sentences but no tokens
    assert sentence_token_ranges("   ", tokenizer.piece_ids_with_offsets("   ")[1]) == []


def first_city_reader(tokenizer: BertTokenizer) -> CachedFake:
    """A reader that confuses people as a small one does: when its row names the person asked
    (the question's first two tokens), it answers the first city of the row, whoever's it is;
    otherwise "no answer"."""
    sep = tokenizer.sep_id
    cities = {tokenizer.token_to_id(c[0]): tokenizer.token_to_id(c[1]) for c in ("北京", "上海")}
    size = tokenizer.vocab_size

    def peaked(token: int) -> np.ndarray:
        probs = np.full(size, 0.05 / (size - 1))
        probs[token] = 0.95
        return probs

    def dist(prefix: list[int], answer: list[int]) -> np.ndarray:
        first_sep = prefix.index(sep)
        passage, question = prefix[1:first_sep], prefix[first_sep + 1 : -1]
        named = any(passage[i : i + 2] == question[:2] for i in range(len(passage) - 1))
        starts = [t for t in passage if t in cities]
        if not answer:
            return peaked(starts[0]) if named and starts else peaked(sep)
        if len(answer) == 1 and answer[0] in cities:
            return peaked(cities[answer[0]])
        return peaked(sep)

    return CachedFake(dist)


PASSAGES = ["王芳住在上海。张伟住在北京。", "王芳住在哪里？"]


@pytest.mark.parametrize("options", [dict(), dict(beam_size=3), dict(span_search=True)])
def test_read_by_sentence_a_person_is_not_lent_another_ones_fact(tokenizer, options):
    model = first_city_reader(tokenizer)
    question = "张伟住在哪里？"
    (whole,) = answer_questions(model, tokenizer, [(question, PASSAGES)], extractive=True,
                                **options)  # fmt: skip
    assert whole.answer == "上海"  # the row names 张伟, and 王芳's city comes first
    (by_sentence,) = answer_questions(
        model, tokenizer, [(question, PASSAGES)], extractive=True, read_by="sentence", **options
    )
    # the answer names the request's passage, not the sentence's row
    assert (by_sentence.answer, by_sentence.passage_index) == ("北京", 0), by_sentence
    assert all(index == 0 for _, _, index in by_sentence.candidates)
    (absent,) = answer_questions(
        model, tokenizer, [("李娜住在哪里？", PASSAGES)], extractive=True, read_by="sentence"
    )
    assert absent.answer is None


@pytest.mark.parametrize(
    "passage",
    [
        # 他住在北京 names nobody alone; joined to 张伟's sentence, the row names him
        "王芳住在上海。张伟在。他住在北京。",
        # Chinese typed with half-width stops is cut into sentences too
        "王芳住在上海.张伟住在北京.",
    ],
)
def test_read_by_sentence_keeps_a_pronouns_sentence_with_its_name(tokenizer, passage):
    model = first_city_reader(tokenizer)
    (result,) = answer_questions(
        model, tokenizer, [("张伟住在哪里？", [passage])], extractive=True, read_by="sentence"
    )
    assert (result.answer, result.passage_index) == ("北京", 0)


def test_qa_eval_reads_by_sentence_when_asked(tokenizer):
    model = first_city_reader(tokenizer)
    example = QAExample("张伟住在哪里？", [Passage(PASSAGES[0], "北京")])
    scores, predictions = evaluate_examples(model, tokenizer, [example], extractive=True)
    assert predictions == ["上海"] and scores["accuracy"] == 0.0
    scores, predictions = evaluate_examples(
        model, tokenizer, [example], extractive=True, read_by="sentence"
    )
    assert predictions == ["北京"] and scores["accuracy"] == 1.0
