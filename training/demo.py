"""Train a small model of each family on data made here, so a fresh store has something to serve.

    python -m training.demo --out model_store

Needs no download. Each family's demo is small enough that the whole demo finishes in minutes on
two CPU cores. A family whose model already has a version in the store is skipped (`--force`
trains a new version anyway). The QA demo, by far the longest, trains in one process while the
others train in another (`--jobs`): one small model's step leaves part of two cores idle.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from models.store import version_folders
from training.common.cli import non_negative_int, positive_int

log = logging.getLogger("training.demo")

# Planted topics for the JoSE demo: documents about one topic share its words, so sentence
# vectors of the same topic should end up closer than those of different topics.
DEMO_TOPICS: dict[str, list[str]] = {
    "books": ["书", "作者", "故事", "阅读", "小说", "章节", "内容", "文笔", "孩子", "出版"],
    "hotel": ["酒店", "房间", "前台", "早餐", "床", "卫生间", "入住", "位置", "服务员", "空调"],
    "phone": ["手机", "屏幕", "电池", "充电", "拍照", "系统", "信号", "键盘", "外观", "内存"],
    "food": ["餐厅", "味道", "菜", "米饭", "口味", "厨师", "价格", "排队", "汤", "外卖"],
    "travel": ["旅游", "景点", "门票", "导游", "风景", "火车", "机场", "行程", "拍照片", "海边"],
}
DEMO_SENTIMENT = ["很好", "不错", "满意", "喜欢", "推荐", "太差", "失望", "一般", "糟糕", "后悔"]
DEMO_FILLER = ["的", "了", "很", "也", "都", "还", "就", "这个", "我们", "非常"]
# Epochs of the digits density demo (1,000 training images, 4 steps an epoch).
DEMO_DENSITY_EPOCHS = 300
# Minutes each demo takes alone on 2 idle cores (docs/benchmarks.md): `--jobs` hands them to its
# processes longest first, each to the least loaded, so the QA demo gets a process of its own.
DEMO_MINUTES = {"demo-qa": 8.1, "demo-digits": 1.5, "demo-cln": 0.6, "demo-jose": 0.3}
# How much nicer than the first lane the others run (`os.nice`).
LANE_NICENESS = 10
# A sentence ends with one of these, so that the generation demo learns to stop.
DEMO_ENDINGS = ["。", "！", "。", "～"]


def demo_labelled_corpus(n_docs: int = 3000, seed: int = 0) -> list[tuple[str, str]]:
    """(sentence, topic) pairs: space-free Chinese sentences, each mostly from its planted topic."""
    rng = random.Random(seed)
    topics = list(DEMO_TOPICS)
    docs = []
    for i in range(n_docs):
        topic = topics[i % len(topics)]
        length = rng.randint(6, 14)
        tokens = [
            rng.choice(DEMO_TOPICS[topic])
            if rng.random() < 0.6
            else rng.choice(DEMO_SENTIMENT if rng.random() < 0.5 else DEMO_FILLER)
            for _ in range(length)
        ]
        docs.append(("".join(tokens), topic))
    return docs


def demo_embedding_corpus(n_docs: int = 3000, seed: int = 0) -> list[str]:
    """The sentences of `demo_labelled_corpus`."""
    return [text for text, _ in demo_labelled_corpus(n_docs, seed)]


def has_version(store: Path, name: str) -> bool:
    folder = store / name
    return folder.is_dir() and bool(version_folders(folder)[0])


def train_jose_demo(store: Path, name: str, epochs: int, seed: int, progress: bool = True) -> None:
    from training.jose import main as embedding_main

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "demo_corpus.txt"
        corpus.write_text("\n".join(demo_embedding_corpus(seed=seed)) + "\n", encoding="utf-8")
        embedding_main(
            [
                "--data", str(corpus),
                "--out", str(store),
                "--name", name,
                "--tokenizer", "jieba",
                "--dim", "64",
                "--min-count", "1",
                "--epochs", str(epochs),
                "--seed", str(seed),
                "--checkpoint-dir", str(Path(tmp) / "ckpt"),
                "--log-dir", "",
                *([] if progress else ["--no-progress"]),
            ]
        )  # fmt: skip


def train_generation_demo(store: Path, name: str, epochs: int, seed: int) -> None:
    """A small conditional LM that writes sentences of a requested topic (labels: the topics)."""
    from training.generation import train_generation

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "topics.tsv"
        endings = random.Random(seed + 1)
        lines = [
            f"{text}{endings.choice(DEMO_ENDINGS)}\t{topic}"
            for text, topic in demo_labelled_corpus(seed=seed)
        ]
        data.write_text("\n".join(lines) + "\n", encoding="utf-8")
        train_generation(
            [
                "--data", str(data),
                "--out", str(store),
                "--name", name,
                "--epochs", str(epochs),
                "--seed", str(seed),
                "--max-length", "48",
                "--hidden-size", "128",
                "--num-layers", "2",
                "--num-heads", "4",
                "--intermediate-size", "256",
                "--label-embedding-size", "32",
                "--min-char-count", "1",
                "--dropout", "0",
                "--ema-decay", "0.99",
                "--checkpoint-dir", str(Path(tmp) / "ckpt"),
                "--checkpoint-every", "0",
                "--log-dir", "",
                "--no-progress",
            ]
        )  # fmt: skip


def train_qa_demo(
    store: Path, name: str, seed: int, epochs: int | None = None, questions: int | None = None
) -> None:
    """A small reading-comprehension model on synthetic passages and questions (None: the QA
    demo's own epochs and training questions)."""
    from training.qa import DEMO_EPOCHS, DEMO_TRAIN_QUESTIONS
    from training.qa import train_qa_demo as train

    train(
        store,
        name,
        seed,
        epochs=DEMO_EPOCHS if epochs is None else epochs,
        train_questions=DEMO_TRAIN_QUESTIONS if questions is None else questions,
    )


def train_density_demo(store: Path, name: str, epochs: int, seed: int) -> None:
    """A small invertible ResNet on scikit-learn's 8x8 digits (bundled with scikit-learn)."""
    from training.density import main as density_main

    with tempfile.TemporaryDirectory() as tmp:
        density_main(
            [
                "--data", "builtin:digits",
                "--out", str(store),
                "--name", name,
                "--epochs", str(epochs),
                "--seed", str(seed),
                "--test-draws", "10",
                "--checkpoint-dir", str(Path(tmp) / "ckpt"),
                "--checkpoint-every", "0",
                "--log-dir", "",
                "--no-progress",
            ]
        )  # fmt: skip


def train_demo(name: str, args: argparse.Namespace, progress: bool = True) -> None:
    """Trains the demo `name` into `args.out` (`progress`: whether the job may draw a bar)."""
    started = time.monotonic()
    log.info("training %s", name)
    if name == "demo-jose":
        train_jose_demo(args.out, name, args.jose_epochs, args.seed, progress)
    elif name == "demo-cln":
        train_generation_demo(args.out, name, args.generation_epochs, args.seed)
    elif name == "demo-qa":
        train_qa_demo(args.out, name, args.seed, args.qa_epochs, args.qa_questions)
    elif name == "demo-digits":
        train_density_demo(args.out, name, args.density_epochs, args.seed)
    else:
        raise ValueError(f"no demo called {name!r}")
    log.info("%s trained in %.0f s", name, time.monotonic() - started)


def plan_lanes(names: Sequence[str], jobs: int) -> list[list[str]]:
    """The demos each of `jobs` processes trains in turn: longest first, each to the lane with
    the least work so far (Graham's longest-processing-time rule); no empty lanes."""
    lanes: list[list[str]] = [[] for _ in range(max(1, min(jobs, len(names))))]
    work = [0.0] * len(lanes)
    for name in sorted(names, key=lambda n: -DEMO_MINUTES[n]):
        lane = work.index(min(work))
        lanes[lane].append(name)
        work[lane] += DEMO_MINUTES[name]
    return lanes


def _run_lane(
    train: Callable[[str, argparse.Namespace, bool], None],
    names: list[str],
    args: argparse.Namespace,
) -> None:
    """A child process's lane: no progress bars, which would fight the first lane's, and a lower
    priority: the first lane (the longest) is the critical path, the others fill the cycles it
    leaves idle."""
    os.nice(LANE_NICENESS)
    _configure_logging()
    for name in names:
        train(name, args, False)


def run_lanes(
    lanes: list[list[str]],
    args: argparse.Namespace,
    train: Callable[[str, argparse.Namespace, bool], None] = train_demo,
) -> None:
    """Trains the first lane here and every other in a process of its own, at the same time.
    Raises SystemExit naming the lanes that failed, once all have finished."""
    # spawn, not fork: TensorFlow's thread pools do not survive a fork.
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=_run_lane, args=(train, lane, args), daemon=True)
        for lane in lanes[1:]
    ]
    for child in children:
        child.start()
    # A daemon child outlives a parent killed by a signal: SIGTERM (`docker compose stop`) becomes
    # an exception here, so that the children are stopped below.
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        for name in lanes[0]:
            train(name, args, True)
        for child in children:
            child.join()
    except BaseException:
        # An error, Ctrl-C or SIGTERM: the demo stops as a whole (a rerun skips the demos that
        # finished).
        for child in children:
            child.terminate()
            child.join(timeout=10)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [n for lane, child in zip(lanes[1:], children, strict=True) for n in lane
              if child.exitcode != 0]  # fmt: skip
    if failed:
        raise SystemExit(f"demo training failed in the process for {', '.join(failed)}")


def _raise_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # TensorFlow's and absl's Python loggers narrate every SavedModel export at INFO ("Assets
    # written to ...", "Function ... unsupported characters"): the job's own lines say what matters.
    for noisy in ("absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.demo", description="Train the small demo models into a store."
    )
    parser.add_argument("--out", type=Path, default=Path("model_store"), help="the model store")
    parser.add_argument("--force", action="store_true", help="train even if a version exists")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="demos trained at once, each set in a process of its own (1: one after another, "
        "in this process); on 2 cores, 2 finish the whole demo sooner: the others train while "
        "the QA demo, the longest, runs (docs/benchmarks.md)",
    )
    parser.add_argument("--jose-epochs", type=positive_int, default=5)
    parser.add_argument("--generation-epochs", type=positive_int, default=4)
    parser.add_argument("--density-epochs", type=positive_int, default=DEMO_DENSITY_EPOCHS)
    # Default: the QA demo's own (training.qa DEMO_EPOCHS, DEMO_TRAIN_QUESTIONS). Fewer make a
    # quick store for a smoke test (`make image-test`), not a model that answers well.
    parser.add_argument("--qa-epochs", type=positive_int, default=None)
    parser.add_argument("--qa-questions", type=positive_int, default=None)
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: a file; --out is the model store, a folder")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    _configure_logging()
    args.out.mkdir(parents=True, exist_ok=True)

    names = []
    for name in ("demo-jose", "demo-cln", "demo-qa", "demo-digits"):
        if has_version(args.out, name) and not args.force:
            log.info("%s already has a version in %s: skipped", name, args.out)
        else:
            names.append(name)
    if args.jobs <= 1:
        for name in names:
            train_demo(name, args)
    elif names:
        run_lanes(plan_lanes(names, args.jobs), args)


if __name__ == "__main__":
    main()
