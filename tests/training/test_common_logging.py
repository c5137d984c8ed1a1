import pytest
import tensorflow as tf

from training.common.progress import Progress
from training.common.tensorboard import TensorBoardLogger


def _scalars_in(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files under `log_dir`, by tag: [(step, value)]."""
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                found.setdefault(value.tag, []).append((event.step, number))
    return found


def test_tensorboard_logger_writes_an_event_file(tmp_path):
    log_dir = tmp_path / "runs" / "jose"
    with TensorBoardLogger(log_dir) as logger:
        assert logger.enabled
        logger.scalars(1, loss=2.5, learning_rate=0.1)
        logger.scalars(2, loss=1.5, **{"eval/accuracy": 0.75})
    assert list(log_dir.glob("events.out.tfevents.*"))
    scalars = _scalars_in(log_dir)
    assert scalars["loss"] == [(1, 2.5), (2, 1.5)]
    assert scalars["learning_rate"] == [(1, pytest.approx(0.1))]
    assert scalars["eval/accuracy"] == [(2, 0.75)]


def test_tensorboard_logger_without_folder_does_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    logger = TensorBoardLogger(None)
    assert not logger.enabled
    logger.scalars(1, loss=1.0)
    logger.flush()
    logger.close()
    assert list(tmp_path.iterdir()) == []


def test_progress_disabled_still_counts_and_keeps_metrics(capsys):
    with Progress(total=3, desc="epoch 1", disable=True) as bar:
        bar.update(loss=0.5)
        bar.update(2, loss=0.25, words_per_s=1200)
        assert bar.n == 3
        assert bar.metrics == {"loss": 0.25, "words_per_s": 1200.0}
    assert capsys.readouterr().err == ""


def test_progress_shows_metrics_on_stderr(capsys):
    with Progress(total=4, desc="epoch 2", unit="batch") as bar:
        bar.update(1, loss=0.123456)
        bar.update(3, loss=0.5, words_per_s=987.0)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 2" in captured.err
    assert "4/4" in captured.err
    assert "loss=0.5" in captured.err and "words_per_s=987" in captured.err


def test_progress_with_unknown_total(capsys):
    bar = Progress(total=None, desc="reading")
    bar.update(5)
    bar.close()
    assert bar.n == 5
    assert "reading" in capsys.readouterr().err
