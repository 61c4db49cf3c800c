# The README's two commands: `make run` (the main job) and `make test` (every test).
# Both create the environment on first use; nothing else needs to be installed.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PROFILE ?= tiny
SEED    ?= 0
OUT     ?= runs/$(PROFILE)-kfp

.PHONY: venv run test lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

## The main job: the benchmark pipeline of PROFILE (default tiny) under kfp's local runner —
## dataset, Clean and Compromised models, every unlearning method, the ten metrics of each,
## and the report (leaderboard, verdicts, HTML, plots) in OUT/report.
run: venv
	$(BIN)/salmubench run --profile $(PROFILE) --seed $(SEED) --out $(OUT)

lint: venv
	$(BIN)/ruff check src tests benchmarks components pipelines
	$(BIN)/ruff format --check src tests benchmarks components pipelines

## Every test: lint first, then pytest (pytest exits 5, a failure, if nothing is collected).
test: lint
	$(BIN)/pytest

bench: venv
	$(BIN)/python benchmarks/bench_synth.py
	$(BIN)/python benchmarks/bench_models.py

clean:
	rm -rf $(VENV) runs .pytest_cache
