#!/usr/bin/env bash
# The Dockerfile's build stage without a Docker engine: copy what it copies, install the package
# into a fresh venv the way it does (the cpu extra, no dev tools, not editable), then run the
# service's entry points from outside the source tree, so every import comes from the installed
# package. Then the gpu variant's install step as far as it can go without a GPU: pip resolves
# '.[gpu]' on PyPI (tensorflow[and-cuda] and its nvidia-* wheels) without installing it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir "$work/src"
cp -r pyproject.toml README.md service models training "$work/src/"   # the Dockerfile's COPY lines
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet "$work/src[cpu]"

cd "$work"
export TF_CPP_MIN_LOG_LEVEL=3
"$work/venv/bin/python" - <<'PY'
import importlib
import pkgutil

import models
import service
import training

# Modules of optional extras, which the image does not install (`pip install '.[ray]'`).
OPTIONAL = {"service.ray_app"}

# Every other module of the three packages imports from the installed copy.
for package in (service, models, training):
    assert "/venv/" in package.__file__, package.__file__
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name not in OPTIONAL:
            importlib.import_module(info.name)
print("installed package: every module imports")
PY
"$work/venv/bin/python" -m service.openapi > "$work/openapi.json"
"$work/venv/bin/python" -m training.demo --help > /dev/null
echo "image install check (cpu): ok"

"$work/venv/bin/pip" install --quiet --dry-run --ignore-installed --report "$work/gpu.json" \
  "$work/src[gpu]"
"$work/venv/bin/python" - "$work/gpu.json" <<'PY'
import json
import sys

installs = json.load(open(sys.argv[1]))["install"]
versions = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}
assert versions.get("tensorflow") == "2.21.0", versions.get("tensorflow")
assert "tensorflow-cpu" not in versions, "the gpu extra must not bring the CPU build"
cuda = sorted(n for n in versions if n.startswith("nvidia-"))
for needed in ("nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"):
    assert needed in cuda, (needed, cuda)
print(f"gpu extra resolves: tensorflow 2.21.0 with {len(cuda)} nvidia wheels, no tensorflow-cpu")
PY
echo "image install check: ok"
