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

## The main job: the whole benchmark of PROFILE (default tiny) in run folder OUT — dataset,
## Clean and Compromised models, every unlearning method, the ten metrics of each, and the
## report (leaderboard, verdicts, HTML, plots). Finished stages in OUT are reused.
run: venv
	$(BIN)/salmubench bench --profile $(PROFILE) --seed $(SEED) --out $(OUT)

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
