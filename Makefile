# The README's two commands: `make run` (the main job) and `make test` (every test).
# Both create the environment on first use; nothing else needs to be installed.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PROFILE ?= tiny
SEED    ?= 0
OUT     ?= runs/$(PROFILE)-kfp

.PHONY: venv run test lint lint-venv container-test bench clean monitoring-servers

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

## Static checks: ruff on the Python; then k8s/lint.py (kustomize render of every overlay,
## kubernetes-validate --strict, the PodMonitor schema, the launcher's TrainJob/PyTorchJob
## against the operators' published models at pinned versions, checkov, hadolint,
## yamllint, shellcheck), run from the checkers' own venv so that they never touch the
## project's dependencies.
LINT_VENV ?= .venv-lint

# The operators' published models at pinned versions, one folder each (pip --target), for
# k8s/upstream_models.py: Trainer's TrainJob fields differ per release.
UPSTREAM_MODELS = kubeflow-trainer-api==2.0.1 kubeflow-trainer-api==2.1.0 \
	kubeflow-trainer-api==2.2.1 kubeflow-trainer-api==2.3.0 kubeflow-training==1.9.4

lint-venv: $(LINT_VENV)/.installed

$(LINT_VENV)/.installed: requirements/lint.txt Makefile
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --quiet -r requirements/lint.txt
	for pin in $(UPSTREAM_MODELS); do \
	  $(LINT_VENV)/bin/pip install --quiet --quiet --no-deps --target \
	    "$(LINT_VENV)/upstream/$$(echo "$$pin" | sed 's/==/-/')" "$$pin" || exit 1; \
	done
	touch $@

lint: venv lint-venv
	$(BIN)/ruff check src tests benchmarks components pipelines k8s docker tools
	$(BIN)/ruff format --check src tests benchmarks components pipelines k8s docker tools
	$(LINT_VENV)/bin/python k8s/lint.py

## The component images built with podman and the micro stages run inside them (docker/):
## the full image runs every stage (its data kept in SMOKE_DATA); the lean image runs synth,
## plan and report, the report on the full run's evaluations (it must equal that run's).
SMOKE_DATA ?= $(or $(TMPDIR),/tmp)/salmubench-container-test
container-test: venv
	docker/build.sh cpu
	rm -rf $(SMOKE_DATA)
	SMOKE_DATA=$(SMOKE_DATA) KEEP=1 docker/smoke.sh
	docker/build.sh lean
	docker/smoke.sh lean $(SMOKE_DATA)
	rm -rf $(SMOKE_DATA)

## Every test: lint first, then pytest (pytest exits 5, a failure, if nothing is collected).
test: lint monitoring-servers
	$(BIN)/pytest

## Debian's Prometheus (with promtool) and Pushgateway, which the monitoring tests start on
## 127.0.0.1: installed with apt only when a binary is missing (sudo unless root).
MONITORING_BINS = prometheus promtool prometheus-pushgateway
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)

monitoring-servers:
	@missing=""; for bin in $(MONITORING_BINS); do \
	  command -v "$$bin" >/dev/null 2>&1 || missing="$$missing $$bin"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "missing:$$missing; installing Debian's prometheus prometheus-pushgateway"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install \
	    -y -qq --no-install-recommends prometheus prometheus-pushgateway || exit 1; \
	fi

## The performance suite (docs/BENCHMARKS.md): every stage side by side, medians of 3 rounds,
## then docs/BENCHMARKS.md re-rendered from benchmarks/results/perf-*.json (~35-40 min).
bench: venv
	$(BIN)/python benchmarks/perf.py all --repeat 3

clean:
	rm -rf $(VENV) runs .pytest_cache
