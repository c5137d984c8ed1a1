"""A user's mistakes with the training jobs, as an outside tester made them: files in another
encoding, JSON records without their fields, an `--out` that is a model's or a version's folder,
a learning rate of NaN. Each ends in one `error:` line and exit status 2 (or 1 for a run that
diverged), never a traceback, and the store is left as it was: nothing a service would load.

Every case stops before the first training step (the data are read and checked first) except
the divergence guard, which is tested on its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.data_errors import DataError
from models.generation.data import read_conditional_texts
from models.qa.readers import parse_qa_document, read_qa_file
from training.common.job import TrainingDiverged, check_finite
from training.density import DensityJob
from training.generation import GenerationJob
from training.jose import JoseJob
from training.pretrain import PretrainJob
from training.qa import QAJob, warn_answers_not_in_passages

ZH = ["这本书很好看，我很喜欢。", "服务太差了，再也不来了。", "酒店的房间很干净。"] * 4
SMALL_BERT = ["--hidden-size", "16", "--num-layers", "1", "--num-heads", "1"]
SMALL_BERT += ["--intermediate-size", "16", "--batch-size", "2"]


def _run(job_class, tmp_path: Path, capsys, *argv: str, out: Path | None = None) -> str:
    """Runs the job's command line; returns its one error line (asserting exit status 2, no
    traceback, and an unchanged store)."""
    store = out if out is not None else tmp_path / "store"
    before = sorted(p for p in tmp_path.rglob("*") if "ckpt" not in p.parts)
    common = ["--out", str(store), "--epochs", "1", "--no-progress", "--log-dir", ""]
    with pytest.raises(SystemExit) as exit_info:
        job_class.main([*argv, *common, "--checkpoint-dir", str(tmp_path / "ckpt")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert sorted(p for p in tmp_path.rglob("*") if "ckpt" not in p.parts) == before
    return lines[0]


def test_density_csv_not_utf8_or_too_large(tmp_path: Path, capsys) -> None:
    latin1 = tmp_path / "rows.csv"
    latin1.write_bytes("poids,taille\xe9\n".encode("latin-1") + b"1,2\n3,4\n5,6\n")
    line = _run(DensityJob, tmp_path, capsys, "--data", str(latin1), "--name", "f")
    assert "rows.csv: not UTF-8 text" in line and "iconv" in line
    huge = tmp_path / "huge.csv"
    huge.write_text("".join(f"{1e300 * (i % 3 + 1)},{i}\n" for i in range(20)))
    line = _run(DensityJob, tmp_path, capsys, "--data", str(huge), "--name", "f")
    assert "too large to standardise" in line


@pytest.mark.parametrize(
    "flag", [["--batch-size", "0"], ["--batch-size", "-4"], ["--lr", "nan"], ["--lr", "-1"],
             ["--blocks", "0"], ["--hidden", "0"], ["--hidden", "abc"]],
)  # fmt: skip
def test_density_refuses_flags_that_train_nothing_sensible(
    tmp_path: Path, capsys, flag: list[str]
) -> None:
    # --batch-size -4 exported a version of no training step (its manifest: steps -13),
    # --lr nan one of NaN weights, --hidden 0 aborted the process in oneDNN (status 134).
    with pytest.raises(SystemExit) as exit_info:
        DensityJob().parse_args(["--data", "x.csv", "--name", "f", *flag])
    assert exit_info.value.code == 2
    assert f"argument {flag[0]}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("gbk.txt", "\n".join(ZH).encode("gbk"), "not UTF-8 text"),
        ("utf16.txt", "\n".join(ZH).encode("utf-16"), "UTF-16 text"),
        ("empty.txt", b"", "no word of"),
    ],
)
def test_jose_corpus_errors(tmp_path: Path, capsys, name: str, content: bytes, message) -> None:
    (tmp_path / name).write_bytes(content)
    line = _run(JoseJob, tmp_path, capsys, "--data", str(tmp_path / name), "--name", "j")
    assert message in line and name in line


def test_jose_data_that_is_a_folder_or_missing(tmp_path: Path, capsys) -> None:
    (tmp_path / "corpus").mkdir()
    line = _run(JoseJob, tmp_path, capsys, "--data", str(tmp_path / "corpus"), "--name", "j")
    assert "a folder; give a file" in line
    line = _run(JoseJob, tmp_path, capsys, "--data", str(tmp_path / "none.txt"), "--name", "j")
    assert "none.txt: no such file" in line


GOOD = {"question": "张伟住在哪里？", "passages": [{"passage": "张伟住在北京。", "answer": "北京"}]}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([GOOD] * 12 + [{"passages": []}], "record 12: no 'question'"),
        ([{**GOOD, "question": None}], "record 0: 'question' must be a string, got null"),
        ([{**GOOD, "passages": "张伟住在北京。"}], "record 0: 'passages' must be a list"),
        ([{**GOOD, "passages": [{"passage": None, "answer": "北京"}]}], "passage 0: 'passage'"),
        ([{**GOOD, "passages": [5]}], "passage 0: expected a JSON object"),
        ({"data": [{"paragraphs": [{"qas": []}]}]}, "data[0].paragraphs[0]: no 'context'"),
        (
            {"data": [{"paragraphs": [{"context": "c", "qas": [{"question": "q", "answers": [
                {"text": "c", "answer_start": "x"}]}]}]}]},
            "answer_start must be an integer",
        ),
        (5, "unknown QA format"),
    ],
)  # fmt: skip
def test_qa_records_without_their_fields(document, message: str) -> None:
    # A null question was read as the text "None", a passages string as one passage a
    # character, a missing key late in the file was a KeyError traceback.
    with pytest.raises(DataError) as error:
        parse_qa_document(document)
    assert message in str(error.value)


def test_qa_job_reports_bad_files_in_one_line(tmp_path: Path, capsys) -> None:
    cases = {
        "gbk.json": (json.dumps([GOOD], ensure_ascii=False).encode("gbk"), "not UTF-8 text"),
        "empty.json": (b"", "an empty file"),
        "cut.json": (json.dumps([GOOD]).encode()[:-5], "not JSON"),
        "lines.json": ((json.dumps(GOOD) + "\n{bad\n").encode(), "at line 2"),
        "null.json": (json.dumps([{**GOOD, "question": None}]).encode(), "record 0"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        line = _run(QAJob, tmp_path, capsys, "--data", str(tmp_path / name), "--name", "r")
        assert message in line and name in line


def test_qa_warns_of_answers_not_in_their_passage(tmp_path: Path, capsys) -> None:
    path = tmp_path / "train.json"
    notin = {"question": "q", "passages": [{"passage": "张伟住在北京。", "answer": "上海"}]}
    path.write_text(json.dumps([GOOD, notin], ensure_ascii=False), encoding="utf-8")
    assert warn_answers_not_in_passages(path, read_qa_file(path)) == 1
    assert "1 of 2 answers are not in their passage" in capsys.readouterr().err
    none = {"question": "q", "passages": [{"passage": "张伟住在北京。", "answer": ""}]}
    path.write_text(json.dumps([none]), encoding="utf-8")
    assert warn_answers_not_in_passages(path, read_qa_file(path)) == 0
    assert "no passage has an answer" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("\tbooks\n\thotel\n", ":1: no text"),  # was a ZeroDivisionError
        ('{"text": "a", "vector": [NaN, 1.0]}\n', ":1: the vector holds NaN"),  # exported NaN
        ('{"text": "a", "vector": [1e400, 1.0]}\n', ":1: the vector holds NaN or infinity"),
        ('{"text": "a", "vector": []}\n', ":1: an empty vector"),
    ],
)
def test_generation_lines_that_cannot_train(tmp_path: Path, lines: str, message: str) -> None:
    path = tmp_path / "train.tsv"
    path.write_text(lines, encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_conditional_texts(path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "header", ["text\tlabel", "Sentence\tSentiment", "文本\t标签", "review\tpolarity"]
)
def test_a_header_line_is_no_text_of_a_class(tmp_path: Path, header: str) -> None:
    # `text<TAB>label` on the first line trained a class "label" of one text, "text", which the
    # service then offered as a condition.
    path = tmp_path / "train.tsv"
    path.write_text(f"{header}\n这本书很好看。\tbooks\n酒店很干净。\thotel\n", encoding="utf-8")
    texts = [(t.text, t.label) for t in read_conditional_texts(path)]
    assert texts == [("这本书很好看。", "books"), ("酒店很干净。", "hotel")]


def test_a_first_line_is_a_text_unless_it_looks_like_a_header(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    # A one-word text "text" of a class other lines have, and a first line of no column name.
    path.write_text("text\tbooks\n酒店很干净。\thotel\n好书。\tbooks\n", encoding="utf-8")
    assert [t.text for t in read_conditional_texts(path)] == ["text", "酒店很干净。", "好书。"]
    path.write_text("这本书很好看。\tbooks\n酒店很干净。\thotel\n", encoding="utf-8")
    assert len(read_conditional_texts(path)) == 2


def test_a_header_of_swapped_columns_is_refused(tmp_path: Path, capsys) -> None:
    # label<TAB>text: every text was read as a label of its own.
    path = tmp_path / "train.tsv"
    path.write_text("label\ttext\nbooks\t这本书很好看。\nhotel\t酒店很干净。\n", encoding="utf-8")
    line = _run(GenerationJob, tmp_path, capsys, "--data", str(path), "--name", "g", *SMALL_BERT)
    assert "train.tsv:1: a header line label<TAB>text" in line and "swap the columns" in line


def test_generation_job_refuses_gbk_and_a_max_length_that_never_ends(
    tmp_path: Path, capsys
) -> None:
    path = tmp_path / "train.tsv"
    path.write_bytes("这本书很好看。\tbooks\n".encode("gbk"))
    line = _run(GenerationJob, tmp_path, capsys, "--data", str(path), "--name", "g", *SMALL_BERT)
    assert "not UTF-8 text" in line
    # --max-length 1 looped for ever cutting texts to -1 characters.
    with pytest.raises(SystemExit):
        GenerationJob().parse_args(["--data", str(path), "--name", "g", "--max-length", "1"])
    assert "argument --max-length: must be at least 3" in capsys.readouterr().err


def _version(store: Path, name: str, task: str, family: str, number: int = 1) -> Path:
    folder = store / name / str(number)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"")
    manifest = {"name": name, "version": number, "task": task, "family": family,
                "created_at": "2026-01-01T00:00:00+00:00", "config": {}, "data": {},
                "metrics": {}, "signatures": ["s"], "library_versions": {}}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_out_that_is_no_model_store_is_refused_before_training(tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    version = _version(store, "flow", "density", "iresnet")
    rows = tmp_path / "rows.csv"
    rows.write_text("".join(f"{i % 7 * 0.3},{i % 5 * 0.2}\n" for i in range(30)))
    data = ["--data", str(rows), "--name", "flow", "--blocks", "1", "--hidden", "8"]
    # The model's folder: the version landed in store/flow/flow/1, which the service skips.
    line = _run(DensityJob, tmp_path, capsys, *data, out=store / "flow")
    assert "a model's folder" in line and str(store) in line
    # A version folder: the export wrote into a served version.
    line = _run(DensityJob, tmp_path, capsys, *data, out=version)
    assert "a version folder" in line
    line = _run(DensityJob, tmp_path, capsys, *data, out=rows)
    assert "a file" in line
    # Another task's model of that name: its version replaced a model callers reach elsewhere.
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(ZH), encoding="utf-8")
    line = _run(JoseJob, tmp_path, capsys, "--data", str(corpus), "--name", "flow", out=store)
    assert "holds density versions" in line and "an embedding model needs a name" in line
    # The model's task is its oldest version's, as the service has it: an embedding version
    # copied in by hand beside it (which the service refuses) does not make it an embedding model.
    _version(store, "flow", "embedding", "jose", number=2)
    line = _run(JoseJob, tmp_path, capsys, "--data", str(corpus), "--name", "flow", out=store)
    assert "holds density versions (iresnet, version 1)" in line


def test_pretrain_never_replaces_a_folder_it_did_not_write(tmp_path: Path, capsys) -> None:
    # `--out model_store --name reader` deleted every version of the served model `reader`.
    store = tmp_path / "store"
    _version(store, "reader", "qa", "bert-unilm")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(ZH), encoding="utf-8")
    args = ["--data", str(corpus), "--name", "reader", *SMALL_BERT, "--seq-length", "16"]
    line = _run(PretrainJob, tmp_path, capsys, *args, out=store)
    assert "is not a training.pretrain folder" in line
    assert (store / "reader" / "1" / "manifest.json").is_file()


def test_weights_with_nan_are_never_exported() -> None:
    import tensorflow as tf

    check_finite([tf.Variable([1.0, 2.0])])
    with pytest.raises(TrainingDiverged, match="training diverged"):
        check_finite([tf.Variable([1.0, 2.0]), tf.Variable([np.nan, 0.0], name="kernel")])
    with pytest.raises(TrainingDiverged):
        check_finite([tf.Variable([np.inf])])


def test_demo_refuses_an_out_that_is_a_file_and_no_jobs(tmp_path: Path, capsys) -> None:
    # A file as --out was a FileExistsError traceback from mkdir.
    from training.demo import main as demo_main

    (tmp_path / "store").write_text("")
    for argv in (["--out", str(tmp_path / "store")], ["--out", str(tmp_path / "s"), "--jobs", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            demo_main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "a file; --out is the model store" in err and "--jobs must be at least 1" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    "flag", ["--jose-epochs 0", "--qa-epochs -1", "--qa-questions 0", "--density-epochs 0",
             "--seed -1"]
)  # fmt: skip
def test_demo_refuses_counts_below_one_before_training(tmp_path: Path, capsys, flag: str) -> None:
    # They were handed to the demo's jobs, whose refusal came from a process of its own once the
    # other demos had trained (or, for demos already in the store, never).
    from training.demo import main as demo_main

    for name in ("demo-jose", "demo-cln", "demo-qa", "demo-digits"):
        (tmp_path / "store" / name / "1").mkdir(parents=True)  # nothing to train: no CPU spent
    with pytest.raises(SystemExit) as exit_info:
        demo_main(["--out", str(tmp_path / "store"), *flag.split()])
    assert exit_info.value.code == 2
    assert f"error: argument {flag.split()[0]}: must be" in capsys.readouterr().err


def test_qa_reexport_errors_are_one_line_and_never_write_into_another_task(
    tmp_path: Path, capsys
) -> None:
    # A model folder as --model was a FileNotFoundError traceback, a density version a
    # ValueError one; --name of a density model wrote a QA version over it.
    from training.qa_reexport import main as reexport_main

    store = tmp_path / "store"
    flow = _version(store, "flow", "density", "other")  # a family the contract does not type
    cases = {
        str(store / "flow"): "no manifest.json; --model is a version folder",
        str(flow): "is not a QA model",
    }
    for model, message in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            reexport_main(["--model", model])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        reexport_main(["--model", str(flow), "--name", "bad name"])
    assert "argument --name: invalid model name" in capsys.readouterr().err


def test_a_bad_valid_file_fails_before_training_not_after(tmp_path: Path, capsys) -> None:
    # --valid was read by the manifest's evaluation, after the whole run: a typo in its path, a
    # GBK file or a label training never saw cost the run and exported nothing.
    train = tmp_path / "train.json"
    train.write_text(json.dumps([GOOD] * 4, ensure_ascii=False), encoding="utf-8")
    valid = ["--valid", str(tmp_path / "dev.json")]
    line = _run(QAJob, tmp_path, capsys, "--data", str(train), "--name", "r", *SMALL_BERT, *valid)
    assert "dev.json: no such file" in line
    assert not list(tmp_path.glob("ckpt/ckpt-*"))  # no step was trained, no checkpoint written
    tsv = tmp_path / "train.tsv"
    tsv.write_text("这本书很好看。\tbooks\n酒店很干净。\thotel\n", encoding="utf-8")
    (tmp_path / "dev.tsv").write_text("手机不错。\tphone\n", encoding="utf-8")
    valid = ["--valid", str(tmp_path / "dev.tsv")]
    line = _run(GenerationJob, tmp_path, capsys, "--data", str(tsv), "--name", "g", *SMALL_BERT,
                *valid)  # fmt: skip
    assert "label 'phone' is not one of ['books', 'hotel']" in line
    assert not list(tmp_path.glob("ckpt/ckpt-*"))


def test_init_checkpoint_and_vocab_that_are_not_there(tmp_path: Path, capsys) -> None:
    train = tmp_path / "train.json"
    train.write_text(json.dumps([GOOD] * 4, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "empty").mkdir()
    data = ["--data", str(train), "--name", "r", *SMALL_BERT]
    cases = {
        ("--init-checkpoint", str(tmp_path / "nope")): "no such folder",
        ("--init-checkpoint", str(train)): "not a folder",
        ("--init-checkpoint", str(tmp_path / "empty")): "no vocab.txt",
        ("--vocab", str(tmp_path / "vocab.txt")): "vocab.txt: no such file",
        ("--num-heads", "3"): "--hidden-size 16 is not a multiple of --num-heads 3",
    }
    for flag, message in cases.items():
        line = _run(QAJob, tmp_path, capsys, *data, *flag)
        assert message in line


def test_resume_from_another_models_checkpoint(tmp_path: Path, capsys) -> None:
    # A changed --hidden with --resume was a TensorFlow ValueError traceback about shapes.
    rows = tmp_path / "rows.csv"
    rows.write_text("".join(f"{i % 7 * 0.3},{i % 5 * 0.2}\n" for i in range(30)))
    common = ["--data", str(rows), "--name", "flow", "--blocks", "1", "--epochs", "1"]
    common += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "", "--no-progress"]
    common += ["--out", str(tmp_path / "store"), "--stop-after-steps", "1"]
    DensityJob.main([*common, "--hidden", "8"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        DensityJob.main([*common, "--hidden", "16", "--resume"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "--resume: the checkpoint in" in err and "is not of this model" in err


def test_the_service_finds_nan_in_any_variable_of_a_saved_model(tmp_path: Path) -> None:
    # What the service checks before loading a version (service.registry): every floating-point
    # variable, bfloat16 included, integers skipped.
    import tensorflow as tf

    from models.saved_model import non_finite_variables

    module = tf.Module()
    module.fine = tf.Variable([1.0, 2.0])
    module.steps = tf.Variable([3], dtype=tf.int64)
    module.half = tf.Variable(tf.constant([np.inf, 1.0], tf.bfloat16))
    module.call = tf.function(lambda: module.fine[0], input_signature=[])
    tf.saved_model.save(module, str(tmp_path / "1"))
    assert non_finite_variables(tmp_path / "1") == (["half"], 2)
    assert non_finite_variables(tmp_path / "no-such-version") == ([], 0)


# Flags that ended in a traceback (--max-answer-tokens 0 after the whole run, when the manifest
# refused it; the others before the first step), or trained and exported as if they meant
# something (--valid-limit -1 and --max-vocab -1 left out the last question or word,
# --test-draws 0 made one draw and the manifest said 0).
OUT_OF_RANGE_FLAGS = {
    QAJob: ["--max-answer-tokens 0", "--max-passage-tokens 0", "--beam-size 0", "--placeholders -1",
            "--valid-limit -1", "--window-stride -3", "--first-token-weight nan",
            "--stop-after-steps 0"],
    GenerationJob: ["--label-embedding-size 0", "--condition-hidden-units 0"],
    JoseJob: ["--table-size 0", "--fold-in-steps 0", "--max-vocab -1", "--margin nan",
              "--sample -1", "--fold-in-negative 0", "--fold-in-lr -1", "--stop-after-steps -1"],
    DensityJob: ["--n-terms 0", "--inverse-max-iterations 0", "--clip-norm -1", "--test-draws 0",
                 "--levels -2"],
    PretrainJob: ["--valid-fraction 2"],
}  # fmt: skip


@pytest.mark.parametrize(
    ("job_class", "flag"),
    [(job, flag.split()) for job, flags in OUT_OF_RANGE_FLAGS.items() for flag in flags],
)
def test_numeric_flags_out_of_range_are_one_error_line(job_class, flag: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        job_class().parse_args(["--data", "x", "--name", "n", *flag])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert f"error: argument {flag[0]}: must be" in err


def test_density_clip_norm_0_turns_clipping_off() -> None:
    # Keras reads global_clipnorm=0 as no clipping; it is said so and passed as None.
    assert (
        DensityJob().parse_args(["--data", "x", "--name", "n", "--clip-norm", "0"]).clip_norm == 0
    )


@pytest.mark.parametrize(
    ("job_class", "flags", "message"),
    [
        (PretrainJob, ["--seq-length", "4"], "--seq-length must be in 8 .. --max-position"),
        (DensityJob, ["--lipschitz-coeff", "1.5"], "--lipschitz-coeff must be in (0, 1)"),
    ],
)
def test_combinations_argparse_cannot_check_are_refused_as_it_refuses(
    job_class, flags: list[str], message: str, capsys
) -> None:
    # They exited with status 1 and a bare message; argparse's refusals exit 2 with "error:".
    with pytest.raises(SystemExit) as exit_info:
        job_class().parse_args(["--data", "x", "--name", "n", *flags])
    assert exit_info.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag",
    [
        # qa_eval: a traceback (range() arg 3 must not be zero); beam size 0 evaluated with 1,
        # --limit -1 left out the last question.
        "qa_eval --questions-per-batch 0",
        "qa_eval --beam-size 0",
        "qa_eval --limit -1",
        "qa_eval --skip -2",
        # generation_eval: tracebacks from scikit-learn (no sample) and from the sampler.
        "generation_eval --samples-per-label 0",
        "generation_eval --top-p 0",
        "generation_eval --top-p 1.5",
        "generation_eval --temperature -1",
        "generation_eval --guidance-scale nan",
    ],
)
def test_the_evaluation_tools_refuse_flags_out_of_range(flag: str, capsys) -> None:
    from training.generation_eval import main as generation_eval
    from training.qa_eval import main as qa_eval

    tool, name, value = flag.split()
    run, files = {
        "qa_eval": (qa_eval, ["--model", "m/1", "--data", "d.json"]),
        "generation_eval": (generation_eval, ["--model", "m/1", "--train", "t", "--valid", "v"]),
    }[tool]
    with pytest.raises(SystemExit) as exit_info:
        run([*files, name, value])
    assert exit_info.value.code == 2
    assert f"error: argument {name}: must be" in capsys.readouterr().err
