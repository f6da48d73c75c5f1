# finscale: `make run` sets up and runs the main job; `make test` sets up and runs the tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of this exact version; a range would let pip pull a multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0
# e.g. --index-url https://download.pytorch.org/whl/cpu where PyPI's default build is not wanted
TORCH_PIP_ARGS ?=

.PHONY: setup run test lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(BIN)/pip install --quiet -e ".[dev,yfinance]"
	touch $@

# The main job: the sample datasets, then the 3-trial validation study with 2 local workers on
# the embedded SQLite storage (runs/finscale.db).
run: setup
	$(BIN)/finscale data build --source sample
	$(BIN)/finscale run configs/experiments/validation.yaml --workers 2

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
