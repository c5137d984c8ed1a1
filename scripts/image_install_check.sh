#!/usr/bin/env bash
# The Dockerfile's build stage without a Docker engine: copy what it copies, install the package
# into a fresh venv the way it does (no dev tools, not editable), then run the service's entry
# points from outside the source tree, so every import comes from the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir "$work/src"
cp -r pyproject.toml README.md service models training "$work/src/"   # the Dockerfile's COPY lines
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --upgrade pip
"$work/venv/bin/pip" install --quiet "$work/src"

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
echo "image install check: ok"
