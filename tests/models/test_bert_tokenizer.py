"""BertTokenizer on a vocabulary written by the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.bert.tokenizer import BertTokenizer

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "我", "爱", "和", "nl", "##p", "ke", "##ras", "3", "!",
    "hello", "world", "un", "##aff", "##able", ",", "cafe", "Hello",
]  # fmt: skip


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return tmp_path


def test_mixed_chinese_english_text(folder: Path) -> None:
    tok = BertTokenizer.from_folder(folder)
    # Every Chinese character is a word of its own; English words split into WordPieces.
    assert tok.tokenize("我爱NLP和Keras 3!") == [
        "我", "爱", "nl", "##p", "和", "ke", "##ras", "3", "!",
    ]  # fmt: skip
    ids, segments = tok.encode("我爱NLP和Keras 3!")
    assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and len(ids) == 11
    assert ids[1:3] == [VOCAB.index("我"), VOCAB.index("爱")]
    assert segments == [0] * 11


def test_special_tokens_accents_and_unknown_words(folder: Path) -> None:
    tok = BertTokenizer.from_folder(folder)
    assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (0, 1, 2, 3, 4)
    assert tok.vocab_size == len(VOCAB)
    assert tok.tokenize("Unaffable, Café xyz") == ["un", "##aff", "##able", ",", "cafe", "[UNK]"]
    assert tok.token_to_id("nope") == tok.unk_id and tok.id_to_token(14) == "hello"
    assert tok.decode(tok.encode("hello world")[0]) == "hello world"


def test_cased_folder_keeps_case(folder: Path) -> None:
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    assert BertTokenizer.from_folder(folder).tokenize("Hello hello") == ["Hello", "hello"]


def test_pair_packing_and_longest_first_truncation(folder: Path) -> None:
    tok = BertTokenizer.from_folder(folder)
    ids, segments = tok.encode_pair("hello", "world 我")
    assert ids == [2, 14, 3, 15, 5, 3]
    assert segments == [0, 0, 0, 1, 1, 1]
    # Budget 8 - 3 specials = 5 pieces: the longer (second) text loses its tail first.
    ids, segments = tok.encode_pair("我 爱", "hello world hello world hello", max_length=8)
    assert ids == [2, 5, 6, 3, 14, 15, 14, 3]
    assert segments == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="special tokens"):
        tok.encode_pair("a", "b", max_length=2)


def test_encode_batch_pads_to_the_longest_row_or_a_bucket(folder: Path) -> None:
    tok = BertTokenizer.from_folder(folder)
    batch = tok.encode_batch(["hello world", "我"], pairs=["我", "hello"], pad_to=10)
    assert batch.token_ids.shape == (2, 10) and batch.token_ids.dtype == np.int32
    np.testing.assert_array_equal(batch.token_ids[1, :6], [2, 5, 3, 14, 3, 0])
    np.testing.assert_array_equal(batch.segment_ids[0, :7], [0, 0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(batch.padding_mask.sum(axis=1), [6, 5])
    single = tok.encode_batch(["hello", "hello world 我"])
    assert single.token_ids.shape == (2, 5)
    assert set(single.as_inputs()) == {"token_ids", "segment_ids", "padding_mask"}


def test_vocab_without_special_tokens_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="special tokens"):
        BertTokenizer(tmp_path / "vocab.txt")


def test_special_tokens_typed_in_text_are_text(folder: Path) -> None:
    """A "[SEP]" in a passage must not end it (nor "[CLS]" or "[MASK]" forge a packing): the text is
    split as Google's tokenizer splits it, and only packing adds the special ids."""
    tok = BertTokenizer.from_folder(folder)
    specials = {tok.cls_id, tok.sep_id, tok.mask_id, tok.pad_id}
    for text in ("我[SEP]爱", "[CLS]hello", "hello [MASK] world", "[PAD]"):
        pieces = tok.piece_ids(text)
        assert not specials & set(pieces), (text, tok.tokenize(text))
        ids, offsets = tok.piece_ids_with_offsets(text)
        assert ids == pieces and len(offsets) == len(ids)
        assert not specials & set(tok.encode_batch([text]).token_ids[0, 1:-1].tolist())
    assert tok.tokenize("我[SEP]爱") == ["我", "[UNK]", "[UNK]", "[UNK]", "爱"]  # "[", "sep", "]"
    ids, _ = tok.encode_pair("我[SEP]", "爱")
    assert ids.count(tok.sep_id) == 2 and ids[0] == tok.cls_id


def test_offsets_keep_the_combining_marks_the_normaliser_strips(folder: Path) -> None:
    """A word written with a combining accent ("Cafe" + U+0301, as macOS and many keyboards write
    é) is one piece whose offsets end before the accent, since stripping accents removes it: an
    answer cut from the passage by those offsets read "Cafe" for "Café". A piece's characters
    run on over the marks that follow it and that no piece of their own starts at."""
    tok = BertTokenizer.from_folder(folder)
    for text, expected in [
        ("我爱Cafe\u0301。", ["我", "爱", "Cafe\u0301", "。"]),
        ("Cafe\u0301\u0327", ["Cafe\u0301\u0327"]),  # two marks
        ("我\u0301爱", ["我\u0301", "爱"]),  # after a CJK character too
        ("\u0301我", ["我"]),  # a mark with no letter before it belongs to no piece
        ("Café hello", ["Café", "hello"]),  # precomposed: as before
    ]:
        _, offsets = tok.piece_ids_with_offsets(text)
        assert [text[start:end] for start, end in offsets] == expected, text
    # Where the accent is kept (cased or strip_accents false), it is its piece's already.
    (folder / "tokenizer_config.json").write_text(json.dumps({"strip_accents": False}))
    kept = BertTokenizer.from_folder(folder)
    text = "我爱Cafe\u0301。"
    _, offsets = kept.piece_ids_with_offsets(text)
    assert [text[start:end] for start, end in offsets] == ["我", "爱", "Cafe\u0301", "。"]
