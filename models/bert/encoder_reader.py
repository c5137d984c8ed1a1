"""Reads an exported sentence-encoder SavedModel: its `embed` and (when present) `embed_packed`
signatures. Needs TensorFlow and the signature names only, not the model code."""

from __future__ import annotations

import os
from typing import Any

from models.bert.encoder_signatures import EMBEDDING_KEY, SIGNATURE_EMBED, SIGNATURE_EMBED_PACKED
from models.saved_model import load_saved_model


class SavedModelBertEncoder:
    """The embedding signatures of an exported BERT sentence encoder (what the service drives).

    Args:
        path: the SavedModel folder.

    Attributes:
        embed: the `embed` signature.
        embed_packed: the `embed_packed` signature, None for an export from before it.
        texts_per_row: K of `embed_packed`'s [R, K, H] output (1 without it).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.saved_model = load_saved_model(path)  # keeps the variables alive
        signatures = self.saved_model.signatures
        self.embed: Any = signatures[SIGNATURE_EMBED]
        self.embed_packed: Any = None
        self.texts_per_row = 1
        if SIGNATURE_EMBED_PACKED in signatures:
            self.embed_packed = signatures[SIGNATURE_EMBED_PACKED]
            shape = self.embed_packed.structured_outputs[EMBEDDING_KEY].shape
            self.texts_per_row = int(shape[1])
