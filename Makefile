# Two entry points, both idempotent: the first run installs into .venv, later runs skip the install.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nasearch-installed
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: quickstart test lint

$(STAMP): pyproject.toml data-requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev,ray,cluster]'
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r data-requirements.txt
	@touch $(STAMP)

# A second run continues the first (after an interrupt) or just prints its front.
quickstart: $(STAMP)
	$(BIN)/nasearch search experiments/quickstart.yaml --out runs/quickstart \
		$$(test -f runs/quickstart/run.json && echo --resume)
	$(BIN)/nasearch pareto runs/quickstart

# CI runs this: lint and format checks first, then the suite (its slowest tests listed at the end).
test: lint
	$(BIN)/python -m pytest -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
