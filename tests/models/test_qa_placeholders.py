"""Placeholders for unknown words (`models.qa.placeholders`): one per distinct unknown text of a
question and its passages, the same everywhere, written back in the answer; random order in
training, order of appearance when answering; past K, [UNK] as before."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from models.bert.tokenizer import BertTokenizer, tokens_to_text
from models.qa.decoding import DecodedAnswer, results_from_decoded
from models.qa.placeholders import PlaceholderMap, answer_text, placeholder_tokens
from models.qa.samples import build_prefix, build_sample

K = 4
KNOWN = [*"张伟李雷住在哪里是一名员。？，", "12", "##3"]


def _tokenizer(folder: Path, count: int = K) -> BertTokenizer:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *KNOWN, *placeholder_tokens(count)]
    path = folder / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return BertTokenizer(path)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BertTokenizer:
    return _tokenizer(tmp_path_factory.mktemp("vocab"))


def _ids(tokenizer: BertTokenizer, *tokens: str) -> list[int]:
    return [tokenizer.token_to_id(t) for t in tokens]


def test_an_unknown_text_is_one_placeholder_in_the_question_and_every_passage(tokenizer):
    mapping = PlaceholderMap(tokenizer, K).assign(
        "诸葛住在哪里？", ["诸葛住在乌鲁。", "李雷住在乌鲁。诸葛是一名外卖员。"]
    )
    zhu, ge, wu, lu = (mapping.ids[c] for c in "诸葛乌鲁")
    # in order of first appearance: the question, then the passages
    assert [zhu, ge, wu, lu] == _ids(tokenizer, *placeholder_tokens(4))
    assert len(mapping.ids) == K and "外" not in mapping.ids and "卖" not in mapping.ids
    assert mapping.piece_ids("诸葛住在哪里？")[:2] == [zhu, ge]
    first = mapping.piece_ids("诸葛住在乌鲁。")
    second = mapping.piece_ids("李雷住在乌鲁。诸葛是一名外卖员。")
    assert first[:2] == [zhu, ge] and first[4:6] == [wu, lu]
    assert second[4:6] == [wu, lu] and second[7:9] == [zhu, ge]
    # past K distinct unknowns: [UNK], as without placeholders
    assert second[12:14] == [tokenizer.unk_id] * 2
    assert second[14] == tokenizer.token_to_id("员")


def test_unknown_punctuation_and_symbols_take_no_placeholder(tokenizer):
    """`]`, `【`, `.` and `→` name nothing: as placeholders an answer could copy them as if they
    were a value (`[注1]张伟住在北京。` was answered `]`); they stay [UNK], and a word with a
    letter or digit in it still takes one."""
    mapping = PlaceholderMap(tokenizer, K).assign("张伟住在哪里？", ["[注]【A】.→张伟住在乌鲁。"])
    assert list(mapping.ids) == ["注", "a", "乌", "鲁"]
    unk, placeholder = tokenizer.unk_id, mapping.ids
    assert mapping.piece_ids("[注]【A】.→") == [
        unk, placeholder["注"], unk, unk, placeholder["a"], unk, unk, unk
    ]  # fmt: skip


def test_an_answer_of_placeholders_is_written_back_as_the_users_text(tokenizer):
    mapping = PlaceholderMap(tokenizer, K).assign("李雷住在哪里？", ["李雷住在乌鲁木齐。"])
    ids = mapping.piece_ids("李雷住在乌鲁木齐。")
    assert tokenizer.unk_id not in ids
    assert mapping.text_of(ids[4:8]) == "乌鲁木齐"
    assert answer_text(tokenizer, ids[4:8], mapping) == "乌鲁木齐"
    # without the mapping, as today: the [UNK]s are dropped
    plain = tokenizer.piece_ids("李雷住在乌鲁木齐。")
    assert answer_text(tokenizer, plain[4:8], None) == ""
    # known characters and placeholders mixed
    mapping = PlaceholderMap(tokenizer, K).assign("李雷是？", ["李雷是一名外卖员。"])
    ids = mapping.piece_ids("李雷是一名外卖员。")
    assert mapping.text_of(ids[5:8]) == "外卖员"


def test_a_latin_word_is_one_placeholder_whatever_its_case_and_keeps_the_passages_spelling(
    tokenizer,
):
    mapping = PlaceholderMap(tokenizer, K).assign("tom住在哪里？", ["Tom住在New York。"])
    assert set(mapping.ids) == {"tom", "new", "york"}
    question = mapping.piece_ids("tom住在哪里？")
    passage = mapping.piece_ids("Tom住在New York。")
    assert question[0] == passage[0] == mapping.ids["tom"]
    assert mapping.text_of(passage[:1]) == "Tom"  # the passage's spelling, not the question's
    assert mapping.text_of(passage[3:5]) == "New York"
    assert mapping.text_of([passage[3], *_ids(tokenizer, "12", "##3")]) == "New 123"


def test_training_draws_the_placeholders_in_a_random_order(tokenizer):
    question, passages = "诸葛住在哪里？", ["诸葛住在乌鲁。"]
    placeholder_ids = set(_ids(tokenizer, *placeholder_tokens(K)))
    orders = set()
    for seed in range(40):
        mapping = PlaceholderMap(tokenizer, K).assign(question, passages, rng=random.Random(seed))
        ids = [mapping.ids[c] for c in "诸葛乌鲁"]
        assert set(ids) == placeholder_ids  # distinct, all of them
        orders.add(tuple(ids))
        # still one placeholder a text everywhere, and written back
        assert mapping.piece_ids(passages[0])[:2] == mapping.piece_ids(question)[:2]
        assert mapping.text_of(mapping.piece_ids(passages[0])) == "诸葛住在乌鲁。"
    assert len(orders) > 10
    first = {tuple(PlaceholderMap(tokenizer, K).assign(question, passages).ids.values())}
    assert first == {tuple(_ids(tokenizer, *placeholder_tokens(K)))}


def test_a_training_sample_answers_with_the_passages_placeholders(tokenizer):
    passage, question, answer = "李雷住在乌鲁。", "李雷住在哪里？", "乌鲁"
    mapping = PlaceholderMap(tokenizer, K).assign(
        question, [passage], [answer], rng=random.Random(3)
    )
    sample = build_sample(tokenizer, passage, question, answer, placeholders=mapping)
    prefix, _ = build_prefix(tokenizer, passage, question, placeholders=mapping)
    target = sample.token_ids[len(prefix) : -1]
    assert target == prefix[5:7] == [mapping.ids["乌"], mapping.ids["鲁"]]
    assert tokenizer.unk_id not in sample.token_ids
    # without placeholders: [UNK]s, as before
    plain = build_sample(tokenizer, passage, question, answer)
    assert plain.token_ids[len(prefix) : -1] == [tokenizer.unk_id] * 2


def test_results_write_placeholders_back_per_question(tokenizer):
    one = PlaceholderMap(tokenizer, K).assign("李雷住在哪里？", ["李雷住在乌鲁。"])
    two = PlaceholderMap(tokenizer, K).assign("张伟住在哪里？", ["张伟住在London。"])
    first = _ids(tokenizer, "[unused1]", "[unused2]")
    decoded = [
        DecodedAnswer(first, 0.9, 0, [(first, 0.9, 0)]),
        DecodedAnswer(first[:1], 0.8, 0, [(first[:1], 0.8, 0)]),
    ]
    results = results_from_decoded(tokenizer, decoded, placeholders=[one, two])
    assert [r.answer for r in results] == ["乌鲁", "London"]
    assert results[0].candidates[0][0] == "乌鲁"
    # a placeholder the question does not use is dropped, as [UNK] is
    assert two.text_of(first) == "London"
    # a version without placeholders: the tokens as today
    (plain,) = results_from_decoded(tokenizer, decoded[:1])
    assert plain.answer == "[unused1][unused2]" == tokens_to_text(tokenizer, first)


def test_a_vocabulary_without_the_placeholders_is_refused(tmp_path: Path):
    tokenizer = _tokenizer(tmp_path, count=2)
    PlaceholderMap(tokenizer, 2)
    with pytest.raises(ValueError, match="lacks 2 of the 4 placeholder tokens"):
        PlaceholderMap(tokenizer, 4)
    with pytest.raises(ValueError, match="at least 1"):
        PlaceholderMap(tokenizer, 0)


def test_tokens_to_text_writes_given_words_for_ids(tokenizer):
    ids = _ids(tokenizer, "李", "[unused1]", "[UNK]", "[unused2]", "[SEP]")
    words = {ids[1]: "Tom", ids[3]: "Lee"}
    assert tokens_to_text(tokenizer, ids, words=words) == "李Tom Lee"


def test_words_of_any_script_are_written_back_with_the_blank_between_them(tokenizer):
    """Two unknown words were apart in the text: "Санкт Петербург" (was "СанктПетербург", the
    blank only between ASCII words), "Rue Émile", "Tokyo ２"."""
    for passage, value in [
        ("李雷住在Санкт Петербург。", "Санкт Петербург"),
        ("李雷住在Rue Émile。", "Rue Émile"),
        ("李雷住在Tokyo ２。", "Tokyo ２"),
    ]:
        mapping = PlaceholderMap(tokenizer, K).assign("李雷住在哪里？", [passage])
        ids = mapping.piece_ids(passage)
        assert mapping.text_of(ids[4:-1]) == value, passage


def test_question_words_the_model_does_not_read_take_no_placeholder(tokenizer):
    """A question past max_question_tokens: its unknown words there spent the placeholders the
    passage's answer needed (London [UNK], the answer null)."""
    question = "李雷住在哪里？ aa bb cc dd"
    whole = PlaceholderMap(tokenizer, K).assign(question, ["李雷住在London。"])
    assert "london" not in whole.ids  # all K spent on the question's aa .. dd
    read = PlaceholderMap(tokenizer, K).assign(question, ["李雷住在London。"], question_tokens=8)
    assert list(read.ids) == ["aa", "london"]
    ids = read.piece_ids("李雷住在London。")
    assert read.text_of(ids[4:5]) == "London"


def test_an_answer_is_spelt_as_the_passage_it_is_from(tokenizer):
    """An uncased tokenizer reads "TOKYO" and "Tokyo" as one word, one placeholder: an answer
    from the second passage was written "TOKYO", the first passage's spelling."""
    passages = ["张伟住在TOKYO。", "李雷住在Tokyo。"]
    mapping = PlaceholderMap(tokenizer, K).assign("李雷住在哪里？", passages)
    tokyo = mapping.piece_ids(passages[1])[4:5]
    assert mapping.text_of(tokyo, 1) == "Tokyo" and mapping.text_of(tokyo, 0) == "TOKYO"
    assert mapping.text_of(tokyo) == "TOKYO"  # no passage known: the first one's
    # windows: rows name the passage each was cut from
    windows = dataclasses.replace(mapping, rows=(0, 0, 1))
    assert windows.text_of(tokyo, 2) == "Tokyo" and windows.text_of(tokyo, 1) == "TOKYO"
    decoded = DecodedAnswer(tokyo, 0.9, 1, [(tokyo, 0.9, 1)])
    (result,) = results_from_decoded(tokenizer, [decoded], placeholders=[mapping])
    assert result.answer == "Tokyo" and result.candidates[0][0] == "Tokyo"
