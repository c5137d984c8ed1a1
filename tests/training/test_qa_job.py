"""training.qa end to end on tiny synthetic data: vocabulary, batches, export, resume, eval CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.bert.lm_reader import SavedModelLMStepModel as SavedModelStepModel
from models.bert.tokenizer import BertTokenizer
from models.qa.readers import read_qa_file, write_webqa_file
from models.qa.synthetic import SyntheticConfig, make_synthetic_examples
from models.store import REQUIRED_MANIFEST_KEYS
from tests.tiny_store import load_in_runtime
from training import qa_eval
from training.common.text import build_char_vocab, epoch_batches
from training.qa import train_qa


def test_char_vocab_tokenises_chinese_and_latin_into_characters(tmp_path):
    vocab = build_char_vocab(["张伟住在北京。", "NBA球员Kobe", "北京"])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert vocab[5] == "北"  # most frequent first
    assert "##o" in vocab and "##北" not in vocab and "K" not in vocab  # lower-cased
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(path)
    assert tokenizer.tokenize("张伟住在北京kobe") == list("张伟住在北京") + [
        "k",
        "##o",
        "##b",
        "##e",
    ]
    assert tokenizer.tokenize("上海") == ["[UNK]", "[UNK]"]


def test_epoch_batches_cover_every_sample_once_and_repeat_for_a_seed():
    lengths = np.random.default_rng(0).integers(10, 100, size=103)
    batches = epoch_batches(lengths, 8, seed=3, epoch=1)
    assert sorted(np.concatenate(batches).tolist()) == list(range(103))
    assert max(len(b) for b in batches) == 8
    again = epoch_batches(lengths, 8, seed=3, epoch=1)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))
    other = epoch_batches(lengths, 8, seed=3, epoch=2)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other, strict=False))


def _data(tmp_path):
    train, valid = tmp_path / "train.json", tmp_path / "valid.json"
    write_webqa_file(train, make_synthetic_examples(24, seed=0))
    write_webqa_file(valid, make_synthetic_examples(6, seed=1))
    return train, valid


def _args(tmp_path, train, valid, *extra):
    return [
        "--data", str(train), "--valid", str(valid), "--out", str(tmp_path / "store"),
        "--name", "qa-tiny", "--epochs", "2", "--batch-size", "8",
        "--hidden-size", "16", "--num-layers", "1", "--num-heads", "2",
        "--intermediate-size", "32", "--max-passage-tokens", "96",
        "--max-question-tokens", "16", "--max-answer-tokens", "6",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--checkpoint-every", "3",
        "--log-dir", "", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_job_exports_a_decodable_version_and_resumes(tmp_path, capsys):
    train, valid = _data(tmp_path)
    assert train_qa(_args(tmp_path, train, valid, "--stop-after-steps", "4")) is None
    capsys.readouterr()
    path = train_qa(_args(tmp_path, train, valid, "--resume"))
    assert "at step 4" in capsys.readouterr().err
    assert path is not None and path.name == "1"
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    for key in (*REQUIRED_MANIFEST_KEYS, "max_passage_tokens", "max_answer_tokens", "tokenizer"):
        assert key in manifest
    assert manifest["task"] == "qa" and manifest["max_answer_tokens"] == 6
    assert load_in_runtime(path).max_question_tokens == 16  # the store's round trip
    assert {"prefill", "step", "reorder", "full_logits"} <= set(manifest["signatures"])
    assert 0.0 <= manifest["metrics"]["valid_accuracy"] <= 1.0
    assert manifest["metrics"]["steps"] == 2 * -(-manifest["data"]["passages"] // 8)
    # Without --overlap-feature nothing of it is recorded (old manifests and models stay as they
    # were; the feature's own tests below check what it records).
    assert "overlap_sep_id" not in manifest["config"]
    assert manifest["config"]["overlap_feature"] == "none"
    vocab = (path / manifest["tokenizer"]["vocab"]).read_text(encoding="utf-8").split("\n")
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and "北" in vocab

    # The SavedModel's cache decoding and its full_logits agree, through the eval script.
    saved = SavedModelStepModel(path)
    log_probs, _ = saved.prefill(np.array([[2, 5, 3, 6, 3]]), np.array([5]))
    assert log_probs.shape == (1, len(vocab) - 1)
    capsys.readouterr()
    report = qa_eval.main(["--model", str(path), "--data", str(valid)])
    reference = qa_eval.main(["--model", str(path), "--data", str(valid), "--no-cache"])
    assert report["count"] == 6
    assert report["accuracy"] == reference["accuracy"] and report["f1"] == reference["f1"]
    printed = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert printed[0]["accuracy"] == report["accuracy"]

    # --skip / --limit pick questions 2-4 of the 6; the span search decodes through the CLI,
    # cached and not, to the same answers
    predictions = tmp_path / "preds.json"
    window = ["--skip", "2", "--limit", "3", "--predictions", str(predictions)]
    part = qa_eval.main(["--model", str(path), "--data", str(valid), *window])
    assert part["count"] == 3 and part["skip"] == 2
    every = [e.question for e in read_qa_file(valid)]
    written = json.loads(predictions.read_text(encoding="utf-8"))
    assert [p["question"] for p in written] == every[2:5] and len(set(every)) == 6
    spans = ["--extractive", "--span-search", "--length-penalty", "1", "--force-answer"]
    searched = qa_eval.main(["--model", str(path), "--data", str(valid), *spans])
    reference = qa_eval.main(["--model", str(path), "--data", str(valid), *spans, "--no-cache"])
    assert searched["span_search"] and searched["count"] == 6
    assert searched["accuracy"] == reference["accuracy"] and searched["f1"] == reference["f1"]


@pytest.mark.slow
def test_job_with_the_overlap_feature_records_it_and_resumes(tmp_path, capsys):
    """`--overlap-feature bigram`: the encoder reads the exact-match marks, the manifest records
    the [SEP] id they need (what `training.qa_reexport` rebuilds the model with), a resumed run
    restores the feature's weight, and the export serves (the SavedModel computes the marks)."""
    train, valid = _data(tmp_path)
    extra = ("--overlap-feature", "bigram")
    assert train_qa(_args(tmp_path, train, valid, "--stop-after-steps", "4", *extra)) is None
    path = train_qa(_args(tmp_path, train, valid, "--resume", *extra))
    assert "at step 4" in capsys.readouterr().err
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["overlap_feature"] == "bigram"
    assert manifest["config"]["overlap_sep_id"] == 3
    assert 0.0 <= manifest["metrics"]["valid_accuracy"] <= 1.0
    runtime = load_in_runtime(path)
    item = runtime.prepare("张伟住在哪里？", ["张伟住在北京。"], max_answer_tokens=None,
                           beam_size=1, extractive=True)  # fmt: skip
    assert len(runtime.run_batch([item])) == 1
    report = qa_eval.main(["--model", str(path), "--data", str(valid)])
    reference = qa_eval.main(["--model", str(path), "--data", str(valid), "--no-cache"])
    assert report["accuracy"] == reference["accuracy"] and report["f1"] == reference["f1"]
    # Without the flag nothing is recorded: test_job_exports_a_decodable_version_and_resumes.


@pytest.mark.slow
def test_job_with_the_match_length_feature_records_it_and_reexports(tmp_path):
    """`--overlap-feature ngram`: the manifest records the cap beside the [SEP] id, and
    `training.qa_reexport` rebuilds the same model from them (the same answers and scores)."""
    from training.qa_reexport import reexport_qa

    train, valid = _data(tmp_path)
    extra = ("--overlap-feature", "ngram", "--overlap-max-length", "5")
    path = train_qa(_args(tmp_path, train, valid, "--first-token-weight", "2", *extra))
    assert path is not None
    config = json.loads((path / "manifest.json").read_text(encoding="utf-8"))["config"]
    assert config["overlap_feature"] == "ngram"
    assert config["overlap_sep_id"] == 3 and config["overlap_max_length"] == 5
    assert config["bert"] and config["first_token_weight"] == 2.0
    again = reexport_qa(path, "again")
    question = ("张伟住在哪里？", ["张伟住在北京。李伟住在上海。"])
    _assert_same_answer(path, again, question)


def test_job_with_copy_attention_records_it_and_every_reader_decodes_with_it(tmp_path):
    """`--copy-attention`: the manifest's config records it, `training.qa_reexport` rebuilds the
    same model (every weight read back), and the service's runtime and `qa_eval` (cached and
    not) read the exported SavedModel's shared softmax with no option of their own."""
    from training.qa_reexport import reexport_qa

    train, valid = _data(tmp_path)
    path = train_qa(_args(tmp_path, train, valid, "--copy-attention", "--extractive"))
    assert path is not None
    config = json.loads((path / "manifest.json").read_text(encoding="utf-8"))["config"]
    assert config["copy_attention"] is True
    # The cache holds the copy attention's entry after the encoder's layers.
    saved = SavedModelStepModel(path)
    assert saved._cache_shape[0] == config["bert"]["num_layers"] + 1
    again = reexport_qa(path, "again")
    _assert_same_answer(path, again, ("张伟住在哪里？", ["张伟住在北京。李伟住在上海。"]))
    runtime = load_in_runtime(path)
    item = runtime.prepare("张伟住在哪里？", ["张伟住在北京。"], max_answer_tokens=None,
                           beam_size=2, extractive=True)  # fmt: skip
    answer = runtime.run_batch([item])[0].answer
    assert answer is None or answer in "张伟住在北京。"
    report = qa_eval.main(["--model", str(path), "--data", str(valid), "--extractive"])
    reference = qa_eval.main(
        ["--model", str(path), "--data", str(valid), "--extractive", "--no-cache"]
    )
    assert report["accuracy"] == reference["accuracy"] and report["f1"] == reference["f1"]


def test_a_copy_attention_run_resumed_without_it_is_refused(tmp_path):
    """The checkpoint holds the copy attention's weights: resumed without `--copy-attention`,
    the run trained on without them and exported a model without copy attention."""
    from models.data_errors import DataError

    train, valid = _data(tmp_path)
    assert (
        train_qa(_args(tmp_path, train, valid, "--copy-attention", "--stop-after-steps", "2"))
        is None
    )
    with pytest.raises(DataError, match="not of this model.*copy_attention"):
        train_qa(_args(tmp_path, train, valid, "--resume"))
    assert not (tmp_path / "store" / "qa-tiny").exists()


@pytest.mark.slow
def test_job_with_the_sentence_feature_records_it_and_reexports(tmp_path):
    """`--sentence-feature count`: the manifest records the sentence ends' ids (those of 。！？；
    the vocabulary holds), the cap and the pronouns that join a sentence to the one before
    (`--sentence-join`), the service's runtime answers with it, and `training.qa_reexport`
    rebuilds the same model; without `--overlap-feature` it is refused, and so are joining
    tokens without the feature or of two tokens (one outside the vocabulary is left out)."""
    from training.qa_reexport import reexport_qa

    # Data whose people are referred back to by 他/她, so that both are in the vocabulary.
    train, valid = tmp_path / "train.json", tmp_path / "valid.json"
    pronouns = SyntheticConfig(pronoun_fraction=1.0, facts_per_person=(2, 3))
    write_webqa_file(train, make_synthetic_examples(24, 0, pronouns))
    write_webqa_file(valid, make_synthetic_examples(6, 1, pronouns))
    extra = ("--overlap-feature", "bigram", "--sentence-feature", "count",
             "--sentence-max-count", "6", "--sentence-join", "她", "他", "它")  # fmt: skip
    path = train_qa(_args(tmp_path, train, valid, *extra))
    assert path is not None
    config = json.loads((path / "manifest.json").read_text(encoding="utf-8"))["config"]
    tokenizer = BertTokenizer(path / "assets" / "vocab.txt")
    assert config["sentence_feature"] == "count" and config["sentence_max_count"] == 6
    # The data hold 。 (passages) and ？ (questions), not ！ nor ；.
    assert config["sentence_end_ids"] == sorted(tokenizer.token_to_id(c) for c in "。？")
    # 它 is in no passage, so not in the vocabulary: left out (joining on [UNK] would join after
    # any unknown character).
    assert tokenizer.token_to_id("它") == tokenizer.unk_id
    assert config["sentence_join_ids"] == sorted(tokenizer.token_to_id(c) for c in "他她")
    again = reexport_qa(path, "again")
    assert (
        json.loads((again / "manifest.json").read_text("utf-8"))["config"]["sentence_join_ids"]
        == config["sentence_join_ids"]
    )
    question = ("张伟今年多大？", ["张伟住在北京。他今年35岁。王芳住在上海。"])
    _assert_same_answer(path, again, question)
    with pytest.raises(ValueError, match="needs --overlap-feature"):
        train_qa(_args(tmp_path / "no", train, valid, "--sentence-feature", "count"))
    with pytest.raises(ValueError, match="needs --sentence-feature"):
        train_qa(_args(tmp_path / "no", train, valid, "--overlap-feature", "bigram",
                       "--sentence-join", "他"))  # fmt: skip
    with pytest.raises(ValueError, match="not one token"):
        train_qa(_args(tmp_path / "no", train, valid, *extra[:-3], "他们"))


@pytest.mark.slow
def test_job_with_placeholders_records_them_and_every_reader_maps_through_them(tmp_path):
    """`--placeholders K`: the vocabulary built from the data ends with [unused1] .. [unusedK],
    the manifest says `placeholders.count`, `training.qa_reexport` keeps it, and the service's
    runtime and `qa_eval` map a question's unknown words to them; a given vocabulary without
    them is refused."""
    from models.qa.placeholders import placeholder_tokens
    from training.qa_reexport import reexport_qa

    train, valid = _data(tmp_path)
    path = train_qa(_args(tmp_path, train, valid, "--placeholders", "4"))
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["placeholders"] == {"count": 4}
    vocab = (path / "assets" / "vocab.txt").read_text(encoding="utf-8").split()
    assert vocab[-4:] == placeholder_tokens(4)
    again = reexport_qa(path, "again")
    assert json.loads((again / "manifest.json").read_text("utf-8"))["placeholders"] == {"count": 4}
    runtime = load_in_runtime(again)
    item = runtime.prepare("Tom住在哪里？", ["Tom住在London。"], max_answer_tokens=None,
                           beam_size=1, extractive=True)  # fmt: skip
    assert item.placeholders is not None and set(item.placeholders.ids) == {"tom", "london"}
    ids = item.prefixes[0]
    first, second = (runtime.tokenizer.token_to_id(t) for t in placeholder_tokens(2))
    assert ids[1] == ids[-7] == first and ids[4] == second  # Tom in passage and question
    assert len(runtime.run_batch([item])) == 1
    assert qa_eval.main(["--model", str(path), "--data", str(valid)])["count"] == 6
    given = tmp_path / "vocab.txt"
    given.write_text("\n".join(build_char_vocab([train.read_text("utf-8")])) + "\n", "utf-8")
    with pytest.raises(ValueError, match="lacks 4 of the 4 placeholder tokens"):
        train_qa(_args(tmp_path / "no", train, valid, "--vocab", str(given), "--placeholders", "4"))


@pytest.mark.slow
def test_job_with_the_input_softmax_records_it_and_every_reader_decodes_with_it(tmp_path):
    """`--answer-softmax input`: the manifest says so (`training.qa_reexport` copies its
    `decoding` whole), and the service's runtime and `qa_eval` (cached and not) decode
    renormalised over each row's tokens. On the way, `--export-at-stop` exports a run stopped
    early."""
    from models.qa.input_softmax import InputSoftmaxStepModel

    train, valid = _data(tmp_path)
    extra = ("--answer-softmax", "input")
    # A run stopped early exports its averaged weights with --export-at-stop, and resumes.
    early = train_qa(_args(tmp_path, train, valid, "--stop-after-steps", "3", "--export-at-stop",
                           *extra))  # fmt: skip
    assert early is not None and early.name == "1"
    metrics = json.loads((early / "manifest.json").read_text(encoding="utf-8"))["metrics"]
    assert metrics["steps_done"] == 3 and metrics["steps"] > 3
    path = train_qa(_args(tmp_path, train, valid, "--resume", *extra))
    assert path is not None and path.name == "2"
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["metrics"]["steps_done"] == manifest["metrics"]["steps"]
    assert manifest["decoding"]["answer_softmax"] == "input"
    assert manifest["config"]["answer_softmax"] == "input"
    runtime = load_in_runtime(path)
    assert isinstance(runtime._model, InputSoftmaxStepModel)
    item = runtime.prepare("张伟住在哪里？", ["张伟住在北京。"], max_answer_tokens=None,
                           beam_size=2, extractive=False)  # fmt: skip
    answer = runtime.run_batch([item])[0].answer
    assert answer is None or set(answer) <= set("张伟住在北京。哪里？")
    report = qa_eval.main(["--model", str(path), "--data", str(valid)])
    reference = qa_eval.main(["--model", str(path), "--data", str(valid), "--no-cache"])
    assert report["accuracy"] == reference["accuracy"] and report["f1"] == reference["f1"]


@pytest.mark.slow
def test_job_with_next_answer_inputs_records_them_and_every_reader_decodes_with_them(tmp_path):
    """`--answer-input next`: the manifest says so (`training.qa_reexport` keeps it), and the
    service's runtime and `qa_eval` (cached and not) feed each answer slot the passage's next
    token; such a reader decodes spans even when a request says `extractive: false`, and a
    run without --extractive is refused."""
    from training.qa_reexport import reexport_qa

    train, valid = _data(tmp_path)
    with pytest.raises(ValueError, match="--extractive"):
        train_qa(_args(tmp_path / "no", train, valid, "--answer-input", "next"))
    path = train_qa(_args(tmp_path, train, valid, "--answer-input", "next", "--extractive"))
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["decoding"]["answer_input"] == "next"
    again = reexport_qa(path, "again")
    assert (
        json.loads((again / "manifest.json").read_text("utf-8"))["decoding"] == manifest["decoding"]
    )
    runtime = load_in_runtime(again)
    assert runtime.answer_input == "next"
    passage = "张伟住在北京。李娜是医生。"
    for beam_size in (1, 3):
        item = runtime.prepare("张伟住在哪里？", [passage], max_answer_tokens=None,
                               beam_size=beam_size, extractive=False)  # fmt: skip
        assert item.options.extractive
        result = runtime.run_batch([item])[0]
        assert all(text in passage for text, _, _ in result.candidates)
    report = qa_eval.main(["--model", str(path), "--data", str(valid)])
    reference = qa_eval.main(["--model", str(path), "--data", str(valid), "--no-cache"])
    assert report["accuracy"] == reference["accuracy"] and report["f1"] == reference["f1"]
    spans = qa_eval.main(["--model", str(path), "--data", str(valid), "--span-search"])
    assert spans["count"] == 6


def _assert_same_answer(path, again, question: tuple[str, list[str]]) -> None:
    """A version and its re-export answer `question` in the service's runtime alike."""
    answers = []
    for folder in (path, again):
        runtime = load_in_runtime(folder)
        item = runtime.prepare(*question, max_answer_tokens=None, beam_size=2, extractive=False)
        answers.append(runtime.run_batch([item])[0])
    assert answers[0].answer == answers[1].answer
    assert abs(answers[0].score - answers[1].score) < 1e-4


def _tiny_checkpoint(tmp_path, train):
    """A BERT folder (config.json, model.safetensors, vocab.txt) over the data's characters, as
    `training.pretrain` writes one, without the exact-match feature."""
    from models.bert.checkpoint import save_hf_folder
    from models.qa.readers import read_qa_file
    from models.qa.seq2seq import build_qa_model, small_qa_config
    from training.common.text import write_vocab
    from training.qa import _example_texts

    vocab = build_char_vocab(_example_texts(read_qa_file(train)))
    write_vocab(tmp_path / "vocab.txt", vocab)
    config = small_qa_config(len(vocab), 128, hidden_size=16, num_layers=1, num_heads=2,
                             intermediate_size=32)  # fmt: skip
    model = build_qa_model(config)
    save_hf_folder(tmp_path / "bert", model.backbone, model.mlm_head, tmp_path / "vocab.txt")
    return tmp_path / "bert"


@pytest.mark.slow
def test_the_overlap_feature_on_a_pretrained_checkpoint_trains_resumes_and_reexports(
    tmp_path, capsys
):
    """`--init-checkpoint` with `--overlap-feature bigram`: the checkpoint's weights and a new
    zero feature vector, which training moves; the manifest records the [SEP] id as from
    scratch, so `training.qa_reexport` rebuilds the same model; one trace of the step although
    batches differ in width."""
    from training.qa import QAJob
    from training.qa_reexport import reexport_qa

    train, valid = _data(tmp_path)
    folder = _tiny_checkpoint(tmp_path, train)
    extra = ("--init-checkpoint", str(folder), "--overlap-feature", "bigram", "--lr", "1e-3")
    assert train_qa(_args(tmp_path, train, valid, "--stop-after-steps", "2", *extra)) is None
    job = QAJob()
    path = job.run(_args(tmp_path, train, valid, "--resume", *extra))
    assert "at step 2" in capsys.readouterr().err
    assert path is not None
    assert job.train_step.experimental_get_tracing_count() == 1
    assert len({len(s.token_ids) for s in job.samples}) > 1
    overlap = [w for w in job.model.weights if "overlap" in w.path]
    assert len(overlap) == 1 and np.abs(overlap[0].numpy()).max() > 0  # trained from zero
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    config = manifest["config"]
    assert config["overlap_feature"] == "bigram" and config["overlap_sep_id"] == 3
    assert config["init_checkpoint"] == str(folder.resolve())
    assert config["bert"]["hidden_size"] == 16
    again = reexport_qa(path, "again")
    ids = np.array([[2, 5, 6, 7, 3, 5, 6, 3]])
    first = SavedModelStepModel(path).prefill(ids, np.array([8]))[0]
    second = SavedModelStepModel(again).prefill(ids, np.array([8]))[0]
    np.testing.assert_allclose(second, first, atol=1e-5)
    report = qa_eval.main(["--model", str(again), "--data", str(valid)])
    assert report["count"] == 6


def test_batch_width_is_a_multiple_of_32_within_the_position_table():
    from training.qa import batch_width

    assert batch_width([40, 61], longest=188) == 64
    assert batch_width([97], longest=188) == 128
    # 185 rounds to 192 (a multiple of 8 and of 32), past a from-scratch table of 188 positions:
    # the step failed with "indices[188] = 188 is not in [0, 188)".
    assert batch_width([170, 185], longest=188) == 188
    assert batch_width([188], longest=188) == 188
    assert batch_width([185], longest=256) == 192


def test_the_demo_trains_on_ordinary_wording_and_never_on_the_held_out_wording():
    from models.qa.synthetic import make_labelled_examples, make_mixed_examples
    from training.qa import (
        DEMO_HELDOUT_SEED,
        DEMO_MIXTURE,
        DEMO_WORDING_HELDOUT_SYNTHETIC,
        USER_EXAMPLES,
    )

    train = make_mixed_examples(2000, 0, DEMO_MIXTURE)
    text = "".join(p.text for e in train for p in e.passages)
    # compound sentences, statement forms past the canonical one, the wider pool of values
    assert "，" in text and "是一名" in text and "家住" in text and "老板" in text
    held_out = make_labelled_examples(400, DEMO_HELDOUT_SEED, DEMO_WORDING_HELDOUT_SYNTHETIC)
    assert sum(i.held_out_statement for i in held_out) > 40
    assert sum(i.held_out_value for i in held_out) > 40
    # the held-out set's answers in held-out values never answer a training question
    held_out_answers = {a for i in held_out if i.held_out_value for a in i.example.gold_answers()}
    train_answers = {a for e in train for a in e.gold_answers()}
    assert held_out_answers and not held_out_answers & train_answers
    # the users' requests are not training questions
    train_pairs = {(e.question, tuple(p.text for p in e.passages)) for e in train}
    assert not {(q, tuple(p)) for q, p, _ in USER_EXAMPLES} & train_pairs


def test_the_demo_reads_its_unknown_names_and_values_as_placeholders(tmp_path):
    import random

    from models.bert.tokenizer import BertTokenizer
    from models.qa.placeholders import PlaceholderMap, placeholder_tokens
    from models.qa.synthetic import make_mixed_examples, reserved_characters
    from training.common.text import write_vocab
    from training.qa import DEMO_MIXTURE, DEMO_PLACEHOLDERS, OWN_EXAMPLES, demo_vocab

    train = make_mixed_examples(2000, 0, DEMO_MIXTURE)
    vocab = demo_vocab(train, DEMO_PLACEHOLDERS)
    assert vocab[-DEMO_PLACEHOLDERS:] == placeholder_tokens(DEMO_PLACEHOLDERS)
    assert 400 < len(vocab) < 500
    # the characters of the unknown names and values, and Latin letters, are not in it ...
    text = "".join(p.text for e in train for p in e.passages)
    reserved = set(reserved_characters())
    assert sum(c in reserved for c in text) > 1000
    assert sum(c.isascii() and c.isalpha() for c in text) > 1000
    chars = {t.removeprefix("##") for t in vocab}
    assert not chars & reserved and not any(c.isascii() and c.isalpha() for c in chars)
    write_vocab(tmp_path / "vocab.txt", vocab)
    tokenizer = BertTokenizer(tmp_path / "vocab.txt")
    mapper = PlaceholderMap(tokenizer, DEMO_PLACEHOLDERS)
    rng = random.Random(0)
    with_placeholders = 0
    for example in train:
        passages = [p.text for p in example.passages]
        answers = [p.answer for p in example.passages if p.answer]
        mapping = mapper.assign(example.question, passages, answers, rng=rng)
        # ... so they are placeholders, within K: no [UNK] is left
        for text in [example.question, *passages, *answers]:
            assert tokenizer.unk_id not in mapping.piece_ids(text)
        with_placeholders += any(set(mapping.piece_ids(a)) & set(mapping.texts) for a in answers)
    assert with_placeholders > 0.1 * len(train)
    # the probe's own values are unknown to it too (乌鲁木齐's 鲁 木 齐, London)
    own = PlaceholderMap(tokenizer, DEMO_PLACEHOLDERS).assign(*OWN_EXAMPLES[-1][:2])
    assert set(own.ids) == {"tom", "london"}


def test_the_noise_set_is_the_hard_set_with_distractors_put_in():
    from models.qa.synthetic import make_labelled_examples
    from training.qa import (
        DEMO_HELDOUT_SEED,
        DEMO_HELDOUT_SYNTHETIC,
        DEMO_NOISE_HELDOUT_SYNTHETIC,
        NOISE_EXAMPLES,
    )

    hard = make_labelled_examples(200, DEMO_HELDOUT_SEED, DEMO_HELDOUT_SYNTHETIC)
    noise = make_labelled_examples(200, DEMO_HELDOUT_SEED, DEMO_NOISE_HELDOUT_SYNTHETIC)
    # paired: the same questions and answers, every question with distractors
    assert [(i.example.question, i.example.gold_answers(), i.kind) for i in hard] == [
        (i.example.question, i.example.gold_answers(), i.kind) for i in noise
    ]
    assert all(i.noise for i in noise) and not any(i.noise for i in hard)
    assert sum(len(i.example.passages) for i in noise) > sum(len(i.example.passages) for i in hard)
    # the outside tester's three reproducers are among the examples the bench prints
    pairs = {(q, tuple(p)): e for q, p, e in NOISE_EXAMPLES}
    assert pairs[("张伟住在哪里？", ("[注1]张伟住在北京。",))] == "北京"
    assert pairs[("Tom住在哪里？", ("Tom lives here. Tom住在New York。",))] == "New York"
    assert pairs[("张伟住在哪里？[CLS]", ("[SEP][MASK]张伟住在北京。[PAD][UNK]",))] == "北京"


@pytest.mark.slow
def test_job_that_reads_by_sentence_records_it_and_every_reader_follows_it(tmp_path):
    """`--read-by sentence`: the manifest says so (`training.qa_reexport` keeps it); the
    service's runtime reads each sentence as a row by default and `qa_eval` does too, unless
    told `--read-by passage`."""
    from training.qa_reexport import reexport_qa

    train, valid = _data(tmp_path)
    path = train_qa(_args(tmp_path, train, valid, "--read-by", "sentence"))
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["decoding"]["read_by"] == "sentence"
    again = reexport_qa(path, "again")
    assert json.loads((again / "manifest.json").read_text("utf-8"))["decoding"]["read_by"] == (
        "sentence"
    )
    runtime = load_in_runtime(again)
    item = runtime.prepare("张伟住在哪里？", ["张伟住在北京。李娜是医生。"], max_answer_tokens=None,
                           beam_size=None, extractive=False)  # fmt: skip
    assert item.owners == (0, 0) and len(item.passage_rows) == 2
    assert qa_eval.main(["--model", str(path), "--data", str(valid)])["read_by"] == "sentence"
    whole = qa_eval.main(["--model", str(path), "--data", str(valid), "--read-by", "passage"])
    assert whole["read_by"] == "passage"
