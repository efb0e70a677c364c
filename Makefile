# sr_lightning: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
# The torch build to install first. Default: the CPU wheel this machine has locally.
# GPU users: make install TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
# Arguments passed to `python -m sr_lightning.train` (make train ARGS="model=srcnn").
ARGS ?=
# Minutes of training `make train` fits its steps to on this machine (budget_minutes); the
# steps chosen are printed. ARGS="trainer.max_steps=N" pins them instead.
BUDGET ?= 7
# The network `make train` uses, chosen for this machine (`python -m sr_lightning.hardware
# quickstart` prints which and why): VDSR where bf16 units make it fast, else edsr_quick.
# MODEL_ARGS= keeps the config's network.
MODEL_ARGS ?= $$($(BIN)/python -m sr_lightning.hardware quickstart)
PYTEST_ARGS ?=
# The benchmark data (../shared/data here); tests that need it skip when it is unset.
SR_DATA_DIR ?= $(shell test -d ../shared/data && cd ../shared/data && pwd)
export SR_DATA_DIR

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install train test test-full test-browser browser lint docs bench clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -e 's|$$(TORCH_SPEC)|$(TORCH_SPEC)|g' -e 's|$$(BUDGET)|$(BUDGET)|g' \
		| awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install torch ($(TORCH_SPEC)) and the package

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(PIP_TORCH_ARGS)
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

train: install ## Train with the defaults on the bundled sample images, fitted to $(BUDGET) minutes (ARGS="..." to override)
	$(BIN)/python -m sr_lightning.train budget_minutes=$(BUDGET) $(MODEL_ARGS) $(ARGS)

test: install ## Run the test suite (without tests marked slow)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-full: install ## Run every test, slow ones included
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

browser: ## Install Debian's chromium for the browser tests (sr-compare's page), unless a chromium is there
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test-browser: install browser ## Install chromium and run the tests that open a page in it
	$(BIN)/python -m pytest tests/test_compare.py $(PYTEST_ARGS)

bench: install ## Speed benchmark of this machine's class into experiments/benchmarks/results.md (ARGS="--isa avx2" emulates a commodity CPU; ARGS="--device cuda": results_cuda.md)
	$(BIN)/python experiments/benchmarks/run.py $(ARGS)

docs: install ## Build the manual (docs/, mkdocs-material + mkdocstrings) into site/; a broken link or reference fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install ## ruff, and the import layers of docs/architecture.md (import-linter, pyproject.toml)
	$(BIN)/ruff check sr_lightning hydra_plugins tests experiments
	$(BIN)/lint-imports

clean: ## Remove logs, caches and the virtual environment
	rm -rf logs outputs wandb site .pytest_cache .ruff_cache $(VENV) *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
