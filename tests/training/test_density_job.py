"""The density job: reading .npy / .csv data and rejecting bad files, the digits split, a tiny toy
run that exports a loadable model, and a discrete run that stops, resumes and exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from models.density.datasets import DataError, detect_levels, read_array
from models.density.reader import SavedModelDensity
from models.store import REQUIRED_MANIFEST_KEYS
from tests.tiny_store import load_in_runtime
from training.common.seeding import set_seed
from training.density import (
    AUTO_VALID_EVERY_STEPS,
    JIT_AUTO_MIN_STEPS,
    DensityJob,
    load_density_data,
    main,
    parse_args,
    train_density,
)


def _args(tmp_path: Path, data: str, *extra: str) -> list[str]:
    return [
        "--data", data, "--out", str(tmp_path / "store"), "--name", "flow-tiny",
        "--epochs", "1", "--batch-size", "64", "--blocks", "2", "--hidden", "8",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--log-dir", "", "--no-progress",
        "--warmup-steps", "2", "--score-terms", "4", "--score-probes", "1",
        "--export-power-iterations", "20", "--inverse-max-iterations", "30", *extra,
    ]  # fmt: skip


def test_reads_npy_and_csv_with_or_without_header(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.float64).reshape(6, 2) / 4
    np.save(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), array)
    rows = "\n".join(",".join(str(v) for v in row) for row in array)
    (tmp_path / "b.csv").write_text("x,y\n" + rows + "\n\n", encoding="utf-8")
    (tmp_path / "c.csv").write_text(rows + "\n", encoding="utf-8")
    np.testing.assert_allclose(read_array(tmp_path / "b.csv"), array)
    np.testing.assert_allclose(read_array(tmp_path / "c.csv"), array)
    images = np.arange(5 * 3 * 4 * 2).reshape(5, 3, 4, 2) % 256  # [N, H, W, C] pixels
    np.save(tmp_path / "images.npy", images.astype(np.uint8))
    flat = read_array(tmp_path / "images.npy")
    np.testing.assert_array_equal(flat, images.reshape(5, 24))  # one row-major row an image
    assert detect_levels(np.array([[0.0, 3.0], [1.0, 2.0]])) == 4
    assert detect_levels(array) is None
    assert detect_levels(np.array([[-1.0, 2.0], [0.0, 1.0]])) is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.txt", "1,2\n3,4\n", "expected a .npy or .csv"),
        ("a.csv", "x,y\n1,2\n3,oops\n", r"a\.csv:3: not a row of numbers"),
        ("a.csv", "1,2\n3\n", r"a\.csv:2: 1 values, expected 2"),
        ("a.csv", "1,2\nnan,4\n", "row 1 holds NaN"),
        ("a.csv", "1,2\n", "at least 2 rows"),
        ("a.npy", np.arange(5.0), "1-D array"),
        ("a.npy", np.array([["a", "b"], ["c", "d"]]), "not real numbers"),
        ("a.npy", b"not an npy file", "not a readable .npy"),
        ("missing.csv", None, "no such file"),
    ],
)  # fmt: skip
def test_bad_files_give_clear_errors(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_density_data(parse_args(_args(tmp_path, str(path))))


def test_cli_reports_bad_data_and_unknown_builtins(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(_args(tmp_path, "builtin:nope"))
    assert exit_info.value.code == 2
    assert "unknown built-in data 'builtin:nope'" in capsys.readouterr().err
    np.save(tmp_path / "neg.npy", np.array([[0.0, 5.0], [1.0, 2.0], [3.0, 9.0]]))
    with pytest.raises(DataError, match=r"integers in \[0, 3\]"):
        train_density(_args(tmp_path, str(tmp_path / "neg.npy"), "--levels", "4"))
    assert not (tmp_path / "store").exists()


def test_digits_split_follows_the_issue() -> None:
    data = load_density_data(parse_args(["--data", "builtin:digits", "--name", "d"]))
    assert data.test is not None
    assert (len(data.train), len(data.valid), len(data.test)) == (1000, 350, 447)
    assert data.levels == 17 and data.train.shape[1] == 64
    assert data.train.max() <= 16 and data.train.min() >= 0


def test_toy_run_exports_a_loadable_model(tmp_path: Path) -> None:
    args = _args(tmp_path, "builtin:moons", "--toy-samples", "256")
    path = train_density([*args, "--log-dir", str(tmp_path / "runs")])
    assert list((tmp_path / "runs").rglob("events.out.tfevents.*"))  # TensorBoard scalars
    assert path is not None and path == tmp_path / "store" / "flow-tiny" / "1"
    manifest = json.loads((path / "manifest.json").read_text())
    assert set(REQUIRED_MANIFEST_KEYS) <= set(manifest)
    assert load_in_runtime(path).input_dim == 2  # the store's round trip
    assert manifest["task"] == "density" and manifest["family"] == "iresnet"
    assert manifest["input_dim"] == 2 and manifest["levels"] is None
    standardization = manifest["preprocessing"]["standardization"]
    assert len(standardization["mean"]) == 2 and min(standardization["std"]) > 0
    assert manifest["preprocessing"]["dequantization"] is None
    assert manifest["score"]["n_terms"] == 4 and manifest["score"]["n_probes"] == 1
    assert manifest["sampling"]["max_iterations"] == 30
    metrics = manifest["metrics"]
    assert metrics["eval_logdet"] == "exact" and metrics["steps"] == 4
    assert 0 < metrics["valid_bits_per_dim"] < 10 and 0 < metrics["test_bits_per_dim"] < 10

    model = SavedModelDensity(path)
    samples = model.sample(10, seed=0)["samples"]
    assert samples.shape == (10, 2) and np.isfinite(samples).all()
    scores = model.score(samples)
    assert np.isfinite(scores["log_prob"]).all()


def test_neumann_gradient_training_runs_and_is_recorded(tmp_path: Path, capsys) -> None:
    args = _args(tmp_path, "builtin:moons", "--toy-samples", "256", "--neumann-gradient")
    path = train_density([*args, "--logdet", "roulette"])
    assert path is not None
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["config"]["neumann_gradient"] is True
    assert 0 < manifest["metrics"]["valid_bits_per_dim"] < 10
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # argparse's error line and status 2
        train_density([*args, "--logdet", "exact"])
    assert exit_info.value.code == 2
    assert "error: --neumann-gradient is for --logdet series or roulette" in capsys.readouterr().err


def test_xla_step_pads_the_short_batch_without_changing_its_loss(tmp_path: Path) -> None:
    # 250 rows in batches of 64: the epoch's last has 58, which the XLA step takes padded to 64
    # with the copies weighing 0, so its loss is the mean over the 58 rows, as without XLA.
    np.save(tmp_path / "rows.npy", np.random.default_rng(0).normal(size=(250, 2)))
    losses = {}
    for flag in ("--jit", "--no-jit"):
        args = parse_args(
            _args(tmp_path, str(tmp_path / "rows.npy"), flag, "--valid-fraction", "0.1")
        )
        set_seed(args.seed)
        job = DensityJob()
        job.setup(args, tf.distribute.get_strategy())
        assert args.jit is (flag == "--jit")
        (last,) = [b for b in job.batches(0, job.steps_per_epoch) if b.ends_epoch]
        assert 0 < len(last.rows) < args.batch_size
        losses[flag] = job.train(last, fit=None)["bits_per_dim"]
    assert losses["--jit"] == pytest.approx(losses["--no-jit"], rel=1e-5)


def test_xla_is_chosen_for_long_runs_and_refused_for_the_roulette(tmp_path: Path) -> None:
    def resolved(*extra: str) -> bool | None:
        args = parse_args(_args(tmp_path, "builtin:moons", "--toy-samples", "256", *extra))
        DensityJob().setup(args, tf.distribute.get_strategy())
        return args.jit

    assert resolved() is False  # 4 steps: compiling would cost more than it saves
    assert resolved("--epochs", str(JIT_AUTO_MIN_STEPS // 4)) is True
    assert resolved("--epochs", str(JIT_AUTO_MIN_STEPS // 4), "--logdet", "roulette") is False
    with pytest.raises(SystemExit, match="roulette"):
        resolved("--jit", "--logdet", "roulette")


def test_validation_runs_every_few_short_epochs_and_always_at_the_end(
    tmp_path: Path, capsys
) -> None:
    # 256 toy rows in batches of 64: 4 steps an epoch, so auto validates every 25 epochs.
    args = _args(tmp_path, "builtin:moons", "--toy-samples", "256", "--epochs", "30")
    train_density(args)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert AUTO_VALID_EVERY_STEPS // 4 == 25
    assert [line.split(":")[0] for line in lines] == ["epoch 25/30", "epoch 30/30"]
    assert all("valid bits/dim" in line for line in lines)
    train_density([*args, "--valid-every", "1", "--epochs", "3", "--name", "every-epoch"])
    assert capsys.readouterr().err.count("valid bits/dim") == 3
    with pytest.raises(SystemExit) as exit_info:  # argparse's error line and status 2
        train_density([*args, "--valid-every", "0"])
    assert exit_info.value.code == 2
    assert "error: --valid-every must be at least 1" in capsys.readouterr().err


def test_discrete_npy_run_stops_resumes_and_exports(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    # Correlated discrete data in {0, ..., 3}^3.
    base = rng.integers(0, 4, (300, 1))
    data = np.clip(base + rng.integers(-1, 2, (300, 3)), 0, 3).astype(np.int64)
    np.save(tmp_path / "counts.npy", data)
    args = _args(tmp_path, str(tmp_path / "counts.npy"), "--epochs", "2", "--checkpoint-every", "2")

    assert train_density([*args, "--stop-after-steps", "3"]) is None
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("ckpt-*.index")) == [
        "ckpt-2.index",
        "ckpt-3.index",
    ]
    assert not (tmp_path / "store").exists()
    capsys.readouterr()
    path = train_density([*args, "--resume"])
    assert path is not None
    assert "at step 3" in capsys.readouterr().err
    assert (tmp_path / "ckpt" / "ckpt-10.index").exists()  # 270 rows / 64 = 5 steps per epoch
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["levels"] == 4 and manifest["input_dim"] == 3
    assert manifest["data"]["format"] == "npy" and manifest["data"]["valid"] == 30
    preprocessing = manifest["preprocessing"]
    assert preprocessing["dequantization"]["scale"] == 0.25
    assert preprocessing["logit"] == {"alpha": 0.05}
    assert manifest["metrics"]["steps"] == 10
    assert "test_bits_per_dim" not in manifest["metrics"]  # a file has no test split
    # A uniform model over 4 levels would be 2 bits/dim; the data are anything but uniform.
    assert 0 < manifest["metrics"]["valid_bits_per_dim"] < 4

    model = SavedModelDensity(path)
    assert model.levels == 4
    samples = model.sample(20, seed=1)["samples"]
    assert set(np.unique(samples)) <= {0.0, 1.0, 2.0, 3.0}
    scores = model.score(data[:5].astype(np.float32), exact=True)
    assert np.isfinite(scores["log_prob"]).all() and (scores["bits_per_dim"] > 0).all()
