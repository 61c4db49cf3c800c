# The README's two commands: `make run` (the main job) and `make test` (every test).
# Both create the environment on first use; nothing else needs to be installed.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PROFILE ?= tiny
SEED    ?= 0
OUT     ?= runs/$(PROFILE)

.PHONY: venv run test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## The main job, as far as it is built: the dataset of PROFILE (default tiny), the Clean and
## Compromised models, and their ten-metric evaluations (each against the other as target).
run: venv
	$(BIN)/salmubench synth --profile $(PROFILE) --seed $(SEED) --out $(OUT)/dataset --force
	$(BIN)/salmubench train --profile $(PROFILE) --seed $(SEED) --data $(OUT)/dataset \
	    --variant clean --out $(OUT)/clean --force
	$(BIN)/salmubench train --profile $(PROFILE) --seed $(SEED) --data $(OUT)/dataset \
	    --variant compromised --out $(OUT)/compromised --force
	$(BIN)/salmubench eval --profile $(PROFILE) --data $(OUT)/dataset --model $(OUT)/clean \
	    --out $(OUT)/eval-clean --force
	$(BIN)/salmubench eval --profile $(PROFILE) --data $(OUT)/dataset \
	    --model $(OUT)/compromised --clean $(OUT)/eval-clean --compromised $(OUT)/compromised \
	    --out $(OUT)/eval-compromised --force

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

## Every test: lint first, then pytest (pytest exits 5, a failure, if nothing is collected).
test: lint
	$(BIN)/pytest

bench: venv
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_models.py

clean:
	rm -rf $(VENV) runs .pytest_cache
