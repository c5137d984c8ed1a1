"""One runtime per (task, family): how a loaded SavedModel is driven. Imported lazily, so that
the service core does not pay for TensorFlow until a model is loaded."""

from __future__ import annotations

import importlib

from service.runtimes.base import Runtime

_RUNTIMES: dict[tuple[str, str], str] = {
    ("embedding", "jose"): "service.runtimes.jose:JoseEmbeddingRuntime",
    ("embedding", "bert"): "service.runtimes.bert:BertEmbeddingRuntime",
    ("qa", "bert-unilm"): "service.runtimes.qa:QARuntime",
    ("generation", "cln-lm"): "service.runtimes.generation:GenerationRuntime",
    ("density", "iresnet"): "service.runtimes.density:DensityRuntime",
}


def runtime_class(task: str, family: str) -> type[Runtime]:
    try:
        module_name, cls_name = _RUNTIMES[(task, family)].split(":")
    except KeyError:
        known = ", ".join(f"{t}/{f}" for t, f in _RUNTIMES)
        raise ValueError(
            f"no runtime for task {task!r} family {family!r} (known: {known})"
        ) from None
    cls: type[Runtime] = getattr(importlib.import_module(module_name), cls_name)
    return cls
