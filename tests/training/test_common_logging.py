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


class FakeClock:
    """tqdm's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _eta_seconds(bar_line: str) -> float | None:
    """The remaining time of one tqdm line (`... [00:22<2:04:48, ...`); None when it shows `?`."""
    remaining = bar_line.split("<", 1)[1].split(",", 1)[0]
    if remaining == "?":
        return None
    seconds = 0.0
    for part in remaining.split(":"):
        seconds = seconds * 60 + float(part)
    return seconds


def test_progress_eta_leaves_out_the_compiling_first_step(capsys, monkeypatch):
    # The QA demo's first line showed an ETA of 47 hours: its first step (XLA compiling) took
    # 22 s, the next ones well under one. The first step gets no rate, the later ones theirs.
    clock = FakeClock()
    monkeypatch.setattr("tqdm.std.time", clock)
    with Progress(total=7494, desc="qa") as bar:
        clock.now += 22.0
        bar.update(1, loss=5.6)
        for _ in range(30):
            clock.now += 1.0
            bar.update(1, loss=5.0)
    lines = capsys.readouterr().err.replace("\r", "\n").split("\n")
    done = {int(line.split("/7494")[0].rsplit(" ", 1)[-1]): line for line in lines if "<" in line}
    assert "[00:22<?, ?step/s" in done[1], done[1]
    later = {n: line for n, line in done.items() if n > 1}
    assert later, lines
    for n, line in later.items():
        steps_left = 7494 - n
        # 1 step/s since the first step: the ETA is the steps left, in seconds.
        assert _eta_seconds(line) == pytest.approx(steps_left, abs=2), line
