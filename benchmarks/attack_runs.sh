#!/usr/bin/env bash
# The relearning-attack table of docs/ATTACKS.md: every unlearned model of a protocol run
# under every attack, the Clean reference once per world and attack, one process at a time
# on one core; prints each run's wall time (the cost figures in the README come from it).
#   bash benchmarks/attack_runs.sh runs/protocol "0 1 2" "0 1" > attack-runs.log
set -euo pipefail
root=${1:-runs/protocol}
worlds=${2:-"0 1 2"}
seeds=${3:-"0 1"}
core=${CORE:-1}
methods=${METHODS:-"delete cliperase neg_grad grad_diff direct_sim_min shuffled_captions generic_captions vlunlearn finetune precise"}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for seed in $seeds; do
  for w in $worlds; do
    W=$root/world-$w
    for a in persona_split retain_only generic_captions low_precision; do
      ref=$W/attacks/clean/$a
      if [ ! -f "$ref/attack.json" ]; then
        s=$(date +%s)
        taskset -c "$core" .venv/bin/salmubench attack -q --data "$W/dataset" --model "$W/clean" \
          --attack "$a" --profile tiny --out "$ref"
        echo "w$w clean $a $(( $(date +%s) - s )) s"
      fi
      for m in $methods; do
        out=$W/attacks/$m-b5-s$seed/$a
        [ -f "$out/attack.json" ] && continue
        s=$(date +%s)
        taskset -c "$core" .venv/bin/salmubench attack -q --data "$W/dataset" \
          --model "$W/unlearned/$m-b5-s$seed" --attack "$a" --profile tiny --out "$out" \
          --clean "$ref" --compromised "$W/compromised"
        echo "w$w s$seed $m $a $(( $(date +%s) - s )) s"
      done
    done
  done
done
