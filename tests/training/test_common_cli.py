import argparse
import random
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from training.common.cli import add_common_args
from training.common.seeding import set_seed


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_common_args(parser)
    return parser.parse_args(argv)


def test_defaults(monkeypatch):
    monkeypatch.delenv("MODEL_STORE", raising=False)
    args = _parse(["--data", "d.txt", "--name", "jose"])
    assert args.data == Path("d.txt")
    assert args.out == Path("model_store")
    assert args.name == "jose"
    assert args.epochs == 1 and args.seed == 0
    assert args.checkpoint_dir == Path("checkpoints/jose")
    assert args.checkpoint_every == 1000
    assert args.resume is False
    assert args.log_dir == Path("runs/jose")
    assert args.workers == 2
    assert args.ema_decay == 0.999
    assert args.no_progress is False


def test_model_store_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_STORE", str(tmp_path))
    assert _parse(["--data", "d", "--name", "m"]).out == tmp_path


@pytest.mark.parametrize("before_name", [True, False])
def test_explicit_folders_win_whatever_the_order(before_name):
    folders = ["--checkpoint-dir", "/ck", "--log-dir", "/logs"]
    argv = ["--data", "d"] + (
        folders + ["--name", "m"] if before_name else ["--name", "m"] + folders
    )
    args = _parse(argv)
    assert args.checkpoint_dir == Path("/ck")
    assert args.log_dir == Path("/logs")


def test_all_options():
    args = _parse(
        "--data d --out s --name m --epochs 3 --seed 4 --checkpoint-every 0 --resume "
        "--log-dir= --workers 0 --ema-decay 0.99 --no-progress".split()
    )
    assert (args.epochs, args.seed, args.checkpoint_every, args.workers) == (3, 4, 0, 0)
    assert args.resume and args.no_progress
    assert args.log_dir is None
    assert args.ema_decay == 0.99


@pytest.mark.parametrize(
    "extra",
    [
        ["--name", "../etc"],
        # Names the service skips: refused before any training, not at the export.
        ["--name", ".x"],
        ["--name", "a" * 200],
        ["--name", "m", "--epochs", "0"],
        ["--name", "m", "--ema-decay", "1.0"],
        ["--name", "m", "--workers", "-1"],
        [],  # --name is required
    ],
)
def test_bad_values_are_rejected(extra, capsys):
    with pytest.raises(SystemExit):
        _parse(["--data", "d", *extra])
    assert "error" in capsys.readouterr().err


def test_job_can_change_a_default():
    parser = argparse.ArgumentParser()
    add_common_args(parser)
    parser.set_defaults(epochs=5)
    assert parser.parse_args(["--data", "d", "--name", "m"]).epochs == 5


def _draw():
    return random.random(), float(np.random.rand()), float(tf.random.uniform(()))


def test_set_seed_repeats_every_generator():
    set_seed(11)
    first = _draw()
    set_seed(11)
    assert _draw() == first
    set_seed(12)
    assert _draw() != first
    with pytest.raises(ValueError):
        set_seed(-1)
