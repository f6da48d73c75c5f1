# finscale: `make run` sets up and runs the main job; `make test` sets up and runs the tests.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch release of the locks (requirements/torch-cpu.txt, torch-cuda.txt); `make lock` pins it.
TORCH_VERSION ?= 2.13.0
UV ?= $(if $(wildcard $(BIN)/uv),$(BIN)/uv,uv)

# Every experiment spec has its Jobs in jobs/<experiment>/ (the data Jobs in jobs/data/).
SPECS := $(wildcard configs/experiments/*.yaml)
# Where the committed specs' data Jobs get a dataset the image lacks. `download`: the committed
# Jobs then depend on no local build (phase6a's SPY, nasdaq-scaling's ^IXIC come from Yahoo on
# the cluster); a spec of your own, rendered with the default (`local`), ships the bars you built.
RENDER_DATA_FROM ?= download

TOOLS ?= .venv-tools
CHECKOV_VERSION ?= 3.3.30

.PHONY: setup lock run test test-fast lint check-k8s render format clean

setup: $(VENV)/.installed

# The locked dependencies (CPU torch, runtime, dev tools) with scripts/install.sh, as the images
# install theirs; then finscale itself, editable.
$(VENV)/.installed: pyproject.toml $(wildcard requirements/*.txt) scripts/install.sh
	$(PYTHON) -m venv $(VENV)
	PYTHON=$(BIN)/python PIP_QUIET=1 scripts/install.sh cpu --dev -e .
	touch $@

# Re-resolve every lock in requirements/ after changing a dependency in pyproject.toml (or
# TORCH_VERSION); commit the result. TORCH_CPU_WHEELS=DIR takes the CPU torch from a folder.
lock:
	UV=$(UV) TORCH_VERSION=$(TORCH_VERSION) scripts/lock.sh

# The main job: the sample datasets, the 3-trial validation study with 2 local workers on the
# embedded SQLite storage (runs/finscale.db), then its report (runs/report/summary.md).
run: setup
	$(BIN)/finscale data build --source sample
	$(BIN)/finscale run configs/experiments/validation.yaml --workers 2
	$(BIN)/finscale report --experiment validation --out runs/report

# Test processes (pytest-xdist; 0: in this process). `make test` defaults to one process: its
# outage and pod tests start workers whose heartbeats need spare cores on a 2-core machine.
TEST_PROCESSES ?= 0
FAST_TEST_PROCESSES ?= 2

# Every test: unit, integration (PostgreSQL from FINSCALE_TEST_DATABASE_URL), slow.
test: setup
	$(BIN)/pytest -n $(TEST_PROCESSES)

# The inner loop: unit tests that need no database and train nothing for long.
test-fast: setup
	$(BIN)/pytest tests/unit -m "not slow and not postgres" -q -n $(FAST_TEST_PROCESSES)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Generated manifests must match the specs; checkov on the cluster base, the Jobs and the
# Dockerfiles (in a venv of its own: its pins clash with finscale's). Other manifest checks
# (kubernetes-validate, kustomize, hadolint, the skaffold schema) are tests.
check-k8s: setup $(TOOLS)/.installed
	for spec in $(SPECS); do \
	  $(BIN)/finscale render $$spec --out jobs --data-from $(RENDER_DATA_FROM) --check || exit 1; \
	done
	$(TOOLS)/bin/checkov --skip-download --config-file .checkov.yaml

$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"
	touch $@

# Regenerate jobs/ after changing a spec (never done by CI).
render: setup
	for spec in $(SPECS); do \
	  $(BIN)/finscale render $$spec --out jobs --data-from $(RENDER_DATA_FROM) || exit 1; \
	done

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache .hypothesis build dist
