"""What refusing duplicate keys costs the reading of a request body: `json.loads` as FastAPI
calls it against `json.loads(object_pairs_hook=unique_keys)` (service/json_body.py), side by side.

    .venv/bin/python bench/json_body.py [--rounds 15]

Bodies as the API takes them (one embedding text, 256 texts, a QA request over 3 passages, 256
density points, a generation request) and the worst a client can send within the default
MAX_BODY_BYTES (1 MiB): a list of as many one-key objects as fit, where the hook runs for every
object (the service refuses such a body only after reading it). Each round times both readers on
the same body in turn, alternating which goes first; prints each one's median time per body and
the median and quartiles of the per-round ratio (hook / plain). CPU time of this thread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.paired import paired_row  # noqa: E402
from service.json_body import unique_keys  # noqa: E402

MAX_BODY_BYTES = 1_048_576
SENTENCE = "这家酒店的服务很好，房间干净，早餐也不错，下次还会再来。"


def bodies() -> dict[str, bytes]:
    objects = b"[" + b",".join([b'{"a":1}'] * (MAX_BODY_BYTES // 8 - 1)) + b"]"
    return {
        "embeddings, 1 text": json.dumps({"model": "m", "input": SENTENCE}).encode(),
        "embeddings, 256 texts": json.dumps({"model": "m", "input": [SENTENCE] * 256}).encode(),
        "qa, 3 passages": json.dumps(
            {"model": "m", "question": "张伟住在哪里？", "passages": [SENTENCE * 4] * 3}
        ).encode(),
        "density, 256 points": json.dumps(
            {"model": "m", "inputs": [[0.123456, -1.234567]] * 256}
        ).encode(),
        "generation": json.dumps(
            {"model": "m", "condition": 1, "max_new_tokens": 64, "temperature": 0.8}
        ).encode(),
        f"1 MiB of one-key objects ({objects.count(b'{')})": objects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    def plain(body: bytes) -> Any:
        return json.loads(body)

    def strict(body: bytes) -> Any:
        return json.loads(body, object_pairs_hook=unique_keys)

    print(f"| body | bytes | plain | unique keys | ratio, median (quartiles) of {args.rounds} |")
    print("|---|---|---|---|---|")
    for name, body in bodies().items():
        repeat = max(1, 2_000_000 // len(body))
        row = paired_row(lambda b=body: plain(b), lambda b=body: strict(b), args.rounds, repeat)
        print(f"| {name} | {len(body):,} | {row} |")


if __name__ == "__main__":
    main()
