#!/usr/bin/env bash
# One-shot GPU check for issue #8 (no GPU was lent to the task that wrote it, so it has
# never produced a number): builds the small dataset, trains the small Compromised model
# with bf16 autocast, evaluates it, and writes samples/s and seconds of each step to
# benchmarks/results/perf-gpu-small.json (also printed as a table). About 5,000 steps at a
# global batch of 640: minutes on one recent GPU. Quicker look: --gpu-steps 500.
#
#   bash benchmarks/gpu_small.sh                 # from the repository root
#   bash benchmarks/gpu_small.sh --gpu-steps 500
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "$PY" benchmarks/perf.py gpu --profile small "$@"
