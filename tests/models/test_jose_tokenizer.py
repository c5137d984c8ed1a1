"""Tokenizer and vocabulary of JoSE."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from models.jose.tokenizer import PAD_TOKEN, Tokenizer, Vocabulary, basic_split_by_library


def test_char_tokenizer_keeps_ascii_runs_and_splits_han():
    tok = Tokenizer("char")
    assert tok.tokenize("手机iPhone6 很好!") == ["手", "机", "iphone6", "很", "好", "!"]


def test_char_tokenizer_respects_lowercase_flag():
    assert Tokenizer("char", lowercase=False).tokenize("AB c") == ["AB", "c"]


def test_whitespace_tokenizer_splits_on_any_blank():
    assert Tokenizer("whitespace").tokenize(" The  cat\tsat\n") == ["the", "cat", "sat"]


def test_whitespace_tokenizer_keeps_punctuation_on_the_words_as_its_versions_were_trained():
    # Versions in a store were trained with this splitting: their vocabulary holds "program,".
    assert Tokenizer("whitespace").tokenize("The program, permitted.") == [
        "the", "program,", "permitted.",
    ]  # fmt: skip


def test_basic_tokenizer_splits_punctuation_off_the_words():
    tok = Tokenizer("basic")
    assert tok.tokenize("The program, permitted.") == ["the", "program", ",", "permitted", "."]
    # As BERT's BasicTokenizer: every punctuation character is a token, inside words too.
    tokens = tok.tokenize("Isn't it (really) 3.5%?!")
    assert tokens == ["isn", "'", "t", "it", "(", "really", ")", "3", ".", "5", "%", "?", "!"]
    assert tok.tokenize(" \t\n ") == []


@pytest.mark.parametrize("lowercase", [True, False])
def test_basic_tokenizer_splits_ascii_as_the_library_does(lowercase):
    # Plain ASCII takes a shortcut past the library; it must split exactly as the library would,
    # control characters (which BERT drops) and blanks of every kind included.
    tok = Tokenizer("basic", lowercase=lowercase)
    assert tok._normalizer is not None
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(128)]
    common = list("aZ09 ,.'-!?()\"") + ["\t", "\n", "\r", "\x0b", "\x0c", "\x1f", "\x00"]
    texts = ["The program, permitted.", "e-mail: a_b@c.de (1,000$)", "x\x0by", "a\x1fb", "\x7f"]
    for _ in range(3000):
        pool = alphabet if rng.random() < 0.5 else common
        texts.append("".join(rng.choice(pool) for _ in range(rng.randint(0, 24))))
    for text in texts:
        assert tok.tokenize(text) == basic_split_by_library(tok._normalizer, text), repr(text)


def test_basic_tokenizer_makes_each_cjk_ideograph_a_word_and_keeps_other_runs_whole():
    assert Tokenizer("basic").tokenize("手机iPhone6很好！Grüße") == [
        "手", "机", "iphone6", "很", "好", "！", "grüße",
    ]  # fmt: skip


def test_basic_tokenizer_lowercases_and_strips_accents_only_when_asked():
    assert Tokenizer("basic", lowercase=False).tokenize("Café, où?") == ["Café", ",", "où", "?"]
    assert Tokenizer("basic").tokenize("Café, où?") == ["café", ",", "où", "?"]
    stripped = Tokenizer("basic", strip_accents=True)
    assert stripped.tokenize("Café, où?") == ["cafe", ",", "ou", "?"]
    with pytest.raises(ValueError, match="basic"):
        Tokenizer("whitespace", strip_accents=True)


def test_basic_tokenizer_is_safe_from_several_threads():
    tok = Tokenizer("basic")
    texts = ["The program, permitted.", "Hello, world!", "手机很好。"] * 8
    expected = [tok.tokenize(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(tok.tokenize, texts)) == expected


def test_jieba_tokenizer_segments_words_without_blanks():
    tokens = Tokenizer("jieba").tokenize("我喜欢北京天安门  很好")
    assert all(t.strip() == t and t for t in tokens)
    assert "".join(tokens) == "我喜欢北京天安门很好"
    assert "北京" in tokens or "天安门" in tokens  # words, not characters


def test_jieba_tokenizer_is_safe_from_several_threads():
    tok = Tokenizer("jieba")
    texts = ["今天天气很好", "这本书写得不错", "服务员态度很差"] * 8
    expected = [tok.tokenize(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(tok.tokenize, texts)) == expected


def test_tokenizer_config_round_trips():
    tok = Tokenizer("whitespace", lowercase=False)
    again = Tokenizer.from_config(tok.to_config())
    assert again.to_config() == {"kind": "whitespace", "lowercase": False}
    basic = Tokenizer.from_config({"kind": "basic", "lowercase": True, "strip_accents": True})
    assert basic.to_config() == {"kind": "basic", "lowercase": True, "strip_accents": True}
    assert basic.tokenize("Où,") == ["ou", ","]


def test_unknown_tokenizer_kind_is_rejected():
    with pytest.raises(ValueError):
        Tokenizer("bpe")  # type: ignore[arg-type]


def test_vocabulary_orders_by_count_then_word_and_applies_min_count():
    corpus = [["b", "a", "a", "c"], ["b", "a", "d", "d"], ["rare"]]
    vocab = Vocabulary.build(corpus, min_count=2)
    assert vocab.words == [PAD_TOKEN, "a", "b", "d"]
    assert vocab.counts == [0, 3, 2, 2]
    assert Vocabulary.build(corpus, min_count=1, max_size=2).words == [PAD_TOKEN, "a", "b"]


def test_vocabulary_encode_drops_unknown_and_pad_tokens():
    vocab = Vocabulary.build([["x", "y"]])
    assert vocab.encode(["y", "zzz", PAD_TOKEN, "x"]) == [vocab["y"], vocab["x"]]
    assert 0 not in vocab.encode(["x", "y", PAD_TOKEN])


def test_vocabulary_save_load_round_trip(tmp_path):
    vocab = Vocabulary.build([["猫", "dog", "猫"], ["a"]])
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == PAD_TOKEN and lines == vocab.words
    loaded = Vocabulary.load(path)
    assert loaded.words == vocab.words and len(loaded) == len(vocab)


def test_vocabulary_requires_pad_first():
    with pytest.raises(ValueError):
        Vocabulary(["a", PAD_TOKEN])
