"""The BERT embedding runtime: buckets, refusals, warm-up, and /v1/embeddings on real MiniLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from models.bert.encoder_signatures import EMBEDDING_KEY
from models.bert.export import TEXTS_PER_ROW
from service.app import create_app
from service.errors import BadInput, PayloadTooLarge
from service.runtimes import runtime_class
from service.runtimes.bert import (
    BertEmbeddingRuntime,
    first_fit_decreasing,
    pack_texts,
    reachable,
    row_buckets,
)
from service.settings import Settings
from tests.models.test_bert_checkpoint import (
    HIDDEN,
    POSITIONS,
    google_weights,
    to_hf,
    write_hf_folder,
)
from tests.models.test_bert_parity import FIXTURE, minilm_folder
from tests.service.conftest import wait_ready
from training.bert import main as export_encoder

# Same SavedModel, only the padding differs: XLA's sums in another order.
PADDING_TOLERANCE = 1e-5
# Against PyTorch's all-MiniLM-L6-v2 (the fixture): the requirement.
REFERENCE_TOLERANCE = 1e-4
# Tiny buckets: 32 is capped at the tiny model's position table (16).
TINY_BUCKETS = "4,8,32"


@pytest.fixture(scope="module")
def tiny_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bert_runtime")
    checkpoint = write_hf_folder(root / "hf", to_hf(google_weights(), prefix=""))
    return export_encoder(["--checkpoint", str(checkpoint), "--out", str(root / "store"),
                           "--name", "tiny"])  # fmt: skip


def tiny_runtime(version: Path, **settings: Any) -> BertEmbeddingRuntime:
    config = Settings(model_store=version.parent.parent, length_buckets=TINY_BUCKETS, **settings)
    return BertEmbeddingRuntime("tiny", 1, version, config)


def words(n: int) -> str:
    return " ".join(f"w{i % 19}" for i in range(n))


def record_calls(
    runtime: BertEmbeddingRuntime, packed: bool = True
) -> list[tuple[str, tuple[int, int]]]:
    """Replace the model calls by ones that record (signature, input shape) and return zeros;
    `packed=False` stands for an export from before `embed_packed`."""
    calls: list[tuple[str, tuple[int, int]]] = []

    def fake(signature: str) -> Any:
        def call(token_ids: np.ndarray, **_: np.ndarray) -> dict[str, np.ndarray]:
            calls.append((signature, token_ids.shape))
            rows = token_ids.shape[0]
            shape = (rows, HIDDEN) if signature == "embed" else (rows, TEXTS_PER_ROW, HIDDEN)
            return {EMBEDDING_KEY: np.zeros(shape, np.float32)}

        return call

    runtime._embed = fake("embed")
    runtime._embed_packed = fake("embed_packed") if packed else None
    runtime.texts_per_row = TEXTS_PER_ROW if packed else 1
    return calls


def test_row_buckets_are_powers_of_two_up_to_the_batch_size() -> None:
    assert row_buckets(32) == (1, 2, 4, 8, 16, 32)
    assert row_buckets(24) == (1, 2, 4, 8, 16, 24)
    assert row_buckets(1) == (1,)
    buckets = (16, 32, 64)
    # Two texts of 33+ tokens make 66 padded tokens: over a budget of 64, never batched.
    assert reachable(2, 64, buckets, 66) and not reachable(2, 64, buckets, 65)
    assert reachable(1, 64, buckets, 1)  # one text always runs


def test_the_registry_finds_the_bert_runtime() -> None:
    assert runtime_class("embedding", "bert") is BertEmbeddingRuntime


def test_prepare_packs_cls_and_sep_and_refuses_what_cannot_run(tiny_version: Path) -> None:
    runtime = tiny_runtime(tiny_version)
    assert runtime.length_buckets == (4, 8, POSITIONS)  # 32 capped at max_seq_len
    encoded = runtime.prepare("w1 W2", None)
    assert encoded.method == "mean" and encoded.tokens == 4
    tok = runtime.tokenizer
    assert encoded.ids.tolist() == [tok.cls_id, tok.token_to_id("w1"), tok.token_to_id("w2"),
                                    tok.sep_id]  # fmt: skip
    assert runtime.prepare(words(POSITIONS - 2), "mean").tokens == POSITIONS
    with pytest.raises(PayloadTooLarge, match=str(POSITIONS)):
        runtime.prepare(words(POSITIONS - 1), None)
    for method in ("fold_in", "average"):
        with pytest.raises(BadInput, match="mean"):
            runtime.prepare("w1", method)


def test_truncate_cuts_an_over_long_text_to_fit_and_keeps_cls_and_sep(tiny_version: Path) -> None:
    runtime = tiny_runtime(tiny_version)
    tok = runtime.tokenizer
    text = words(POSITIONS + 3)  # w0 ... w18, w0: 2 + 20 tokens, 6 too many
    pieces = [tok.token_to_id(w) for w in text.split()]
    with pytest.raises(PayloadTooLarge, match="truncate"):
        runtime.prepare(text, None)
    right = runtime.prepare(text, None, "right")
    assert right.ids.tolist() == [tok.cls_id, *pieces[: POSITIONS - 2], tok.sep_id]
    left = runtime.prepare(text, "mean", "left")
    assert left.ids.tolist() == [tok.cls_id, *pieces[-(POSITIONS - 2) :], tok.sep_id]
    assert right.tokens == left.tokens == POSITIONS  # what usage counts: what is embedded
    fits = words(POSITIONS - 2)
    assert (
        runtime.prepare(fits, None, "left").ids.tolist() == runtime.prepare(fits, None).ids.tolist()
    )


def test_first_fit_decreasing_places_every_text_once_within_the_row_limits() -> None:
    lengths = [5, 30, 7, 12, 3, 3, 20, 9, 14, 1]
    rows = first_fit_decreasing(lengths, 32, texts_per_row=3)
    assert sorted(t for row in rows for t in row) == list(range(len(lengths)))
    assert all(sum(lengths[t] for t in row) <= 32 and len(row) <= 3 for row in rows)
    assert len(rows) == 4  # 104 tokens: the fewest rows of 32 there can be
    assert first_fit_decreasing([4] * 6, 32, texts_per_row=2) == [[0, 1], [2, 3], [4, 5]]


def test_packing_picks_the_cheapest_warmed_shape_and_never_costs_more_than_padding() -> None:
    widths, sizes = (8, 16, 32, 64), (1, 2, 4, 8)
    shapes = {(r, w) for r in sizes for w in widths}
    # One text of 12 tokens and seven of 3: padded, 8 rows of 16; packed, 12 + 3 | 3 x 5 | 3
    # in rows of 16 (3 rows, padded to 4).
    lengths = [3, 12, 3, 3, 3, 3, 3, 3]
    packed = pack_texts(lengths, shapes, sizes, texts_per_row=16, hidden_size=384)
    assert packed is not None and packed.shape == (4, 16)
    assert packed.rows == [[1, 0], [2, 3, 4, 5, 6], [7]]
    # Only warmed shapes: without (4, 16), two rows of 32 (as many slots, more attention).
    packed = pack_texts(lengths, shapes - {(4, 16)}, sizes, 16, hidden_size=384)
    assert packed is not None and packed.shape == (2, 32)
    # At most texts_per_row texts a row: 2 a row needs 4 rows, then 16 wide is enough.
    packed = pack_texts(lengths, shapes, sizes, texts_per_row=2, hidden_size=384)
    assert packed is not None and packed.shape == (4, 16)
    assert all(len(row) <= 2 for row in packed.rows)
    # Equal slots: the narrower rows, whose attention costs less (8 x 8 rather than 1 x 64).
    packed = pack_texts([5, 6] * 4, shapes, sizes, texts_per_row=16, hidden_size=384)
    assert packed is not None and packed.shape == (8, 8)
    assert pack_texts([40], {(1, 32)}, (1,), 16, 384) is None  # nothing warmed holds it

    rng = np.random.default_rng(0)
    for _ in range(200):
        lengths = rng.integers(1, 65, size=int(rng.integers(1, 9))).tolist()
        packed = pack_texts(lengths, shapes, sizes, texts_per_row=16, hidden_size=384)
        assert packed is not None
        rows, width = packed.shape
        padded_width = next(w for w in widths if w >= max(lengths))
        padded_rows = next(r for r in sizes if r >= len(lengths))
        assert rows * width <= padded_rows * padded_width


def test_batches_pack_into_warmed_shapes_and_texts_do_not_interact(tiny_version: Path) -> None:
    runtime = tiny_runtime(tiny_version, max_batch_size=4)
    runtime.load()
    assert runtime.texts_per_row == TEXTS_PER_ROW
    texts = [words(1), words(5), words(3)]  # 3, 7 and 5 tokens
    items = [runtime.prepare(t, None) for t in texts]
    together = runtime.run_batch(items)
    assert len(together) == 3 and together[0].shape == (HIDDEN,)
    for item, vector in zip(items, together, strict=True):
        (alone,) = runtime.run_batch([item])  # 1 row, a shorter bucket
        np.testing.assert_allclose(alone, vector, atol=PADDING_TOLERANCE)
    padded = runtime.run_batch_padded(items)  # what exports without `embed_packed` compute
    np.testing.assert_allclose(np.stack(padded), np.stack(together), atol=PADDING_TOLERANCE)
    calls = record_calls(runtime)
    runtime.run_batch(items)
    runtime.run_batch(items[:1])
    # 7 | 5 + 3 in two rows of 8 (a row of 16 costs more attention at H = 8).
    assert calls == [("embed_packed", (2, 8)), ("embed_packed", (1, 4))]
    # What benchmarks read of a batch's layout is what run_batch calls.
    lengths = [item.tokens for item in items]
    assert [runtime.call_shape(lengths), runtime.call_shape(lengths[:1])] == [(2, 8), (1, 4)]


def test_an_export_without_embed_packed_pads_each_text_to_the_longest(tiny_version: Path) -> None:
    runtime = tiny_runtime(tiny_version, max_batch_size=4)
    items = [runtime.prepare(t, None) for t in (words(1), words(5), words(3))]
    calls = record_calls(runtime, packed=False)
    runtime.run_batch(items)
    runtime.warmup()
    assert calls[0] == ("embed", (4, 8))
    assert runtime.call_shape([item.tokens for item in items]) == (4, 8)
    assert {signature for signature, _ in calls} == {"embed"}


def test_warmup_runs_every_shape_the_batcher_can_make(tiny_version: Path) -> None:
    runtime = tiny_runtime(tiny_version, max_batch_size=4)
    calls = record_calls(runtime)
    runtime.warmup()
    every = [(r, w) for r in (1, 2, 4) for w in (4, 8, POSITIONS)]
    assert calls == [("embed_packed", shape) for shape in every]
    # With a budget of 8 padded tokens, 2+ texts of 5+ tokens are never batched together.
    runtime = tiny_runtime(tiny_version, max_batch_size=4, max_batch_tokens=8)
    calls = record_calls(runtime)
    runtime.warmup()
    assert [shape for _, shape in calls] == [(1, 4), (1, 8), (1, POSITIONS), (2, 4), (4, 4)]


@pytest.mark.slow
def test_http_embeddings_of_exported_minilm_match_the_reference(tmp_path: Path) -> None:
    store = tmp_path / "store"
    version = export_encoder(
        ["--checkpoint", str(minilm_folder()), "--out", str(store), "--name", "minilm"]
    )
    with np.load(FIXTURE) as data:
        sentences = [str(s) for s in data["sentences"]]
        expected = data["sentence_embedding"]
        tokens = int(data["padding_mask"].sum())
    # One length bucket and rows 1, 2, 4: three XLA compilations at warm-up.
    settings = Settings(model_store=store, poll_interval_s=0, length_buckets="32", max_batch_size=4)
    with TestClient(create_app(settings)) as client:
        wait_ready(client, timeout_s=300)
        assert client.get("/v1/models/minilm").json()["family"] == "bert"
        post = client.post
        r = post("/v1/embeddings", json={"input": sentences})
        assert r.status_code == 200, r.text
        body = r.json()
        got = np.array([d["embedding"] for d in body["data"]], np.float32)
        np.testing.assert_allclose(got, expected, atol=REFERENCE_TOLERANCE)
        assert body["usage"]["prompt_tokens"] == tokens
        assert body["version"] == 1 and version.name == "1"

        r = post("/v1/embeddings", json={"input": sentences[0], "normalize": False})
        raw = np.array(r.json()["data"][0]["embedding"])
        assert abs(np.linalg.norm(raw) - 1.0) > 1e-2  # the model's own, unnormalised mean
        np.testing.assert_allclose(raw / np.linalg.norm(raw), expected[0], atol=REFERENCE_TOLERANCE)

        r = post("/v1/embeddings", json={"input": "hello", "method": "fold_in"})
        assert r.status_code == 400 and r.json()["code"] == "bad_input"
        # No text: refused, not embedded as [CLS] [SEP] alone.
        r = post("/v1/embeddings", json={"input": ["hello", " "]})
        assert r.status_code == 422 and "text 1 is only whitespace" in r.text
        r = post("/v1/embeddings", json={"input": ["hello", "word " * 40]})
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
