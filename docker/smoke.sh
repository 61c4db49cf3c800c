#!/usr/bin/env bash
# Run the micro pipeline's stages inside the component image, one `podman run` each, as
# the image's non-root user and under the pods' hardening (read-only root filesystem, tmpfs
# /tmp, no capabilities, no privilege escalation): synth -> train clean and compromised ->
# eval both -> unlearn (one method) -> eval it -> report. Data in a mounted host folder.
# Fails loudly (the stage's output and status) when any stage fails.
# A lean image (tag ending -lean, docker/Dockerfile.lean) must hold no torch (nor scipy) and
# runs the torch-free stages: synth; plan, by the plan component's own command (the KFP
# executor, from pipelines/compiled/benchmark.yaml); and report, on the evaluations of a
# full-image smoke run kept with KEEP=1 (its data folder, FROM): the report must be the
# one that run's report wrote, byte for byte (leaderboard.json).
# Usage: docker/smoke.sh [IMAGE]        (default: the last image docker/build.sh built)
#        docker/smoke.sh lean [FROM]    (the last lean image docker/build.sh lean built;
#                                        without FROM, no report)
#   METHOD  unlearning method (default neg_grad)   KEEP=1  keep the data folder
#   SMOKE_DATA  the data folder (created; must be empty), default a new temporary folder
#   PYTHON  interpreter with PyYAML, for the plan command (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/podman-env.sh
image=${1:-cpu}
from=${2:-}
if [[ $image == cpu || $image == lean ]]; then
    image=$(cat "$PODMAN_DIR/image-$image" 2>/dev/null || true)
fi
method=${METHOD:-neg_grad}
if [[ -z $image ]] || ! podman image exists "$image"; then
    echo "docker/smoke.sh: no image '${image}': run docker/build.sh first" >&2
    exit 1
fi
uid=$(podman image inspect --format '{{.Config.User}}' "$image")
uid=${uid%%:*}
if [[ -z $uid || $uid == 0 || $uid == root ]]; then
    echo "docker/smoke.sh: $image runs as '${uid:-root}', not a non-root user" >&2
    exit 1
fi
if [[ -n $from && ( $image != *-lean || ! -d $from/evals ) ]]; then
    echo "docker/smoke.sh: FROM '$from' is for a lean image: a kept full-image smoke" \
        "run's data folder, with evals/ (KEEP=1 SMOKE_DATA=DIR docker/smoke.sh)" >&2
    exit 1
fi
if [[ -n ${SMOKE_DATA:-} ]]; then
    data=$SMOKE_DATA
    mkdir -p "$data"
    if [[ -n $(ls -A "$data") ]]; then
        echo "docker/smoke.sh: SMOKE_DATA '$data' is not empty" >&2
        exit 1
    fi
else
    data=$(mktemp -d "${TMPDIR:-/tmp}/salmubench-smoke.XXXXXX")
fi
chown "$uid:$uid" "$data"
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$data"' EXIT

entry=salmubench  # what `stage` runs: the image's entrypoint, unless set otherwise
mounts=()         # and more podman options (volumes) for it
stage() {  # stage NAME ARGS...: `$entry ARGS...` in a fresh container
    local name=$1
    shift
    local start=$SECONDS
    if ! podman run --rm --read-only --tmpfs /tmp:rw,size=1g,mode=1777 \
        --cap-drop ALL --security-opt no-new-privileges \
        --volume "$data:/data" "${mounts[@]}" --workdir /data --entrypoint "$entry" \
        "$image" "$@" >"$data/$name.log" 2>&1; then
        tail -n 30 "$data/$name.log" >&2
        [[ $entry == salmubench ]] || set -- "$1" ...  # not the plan command's script
        echo "docker/smoke.sh: stage $name FAILED in $image: $entry $*" >&2
        exit 1
    fi
    printf '  %-20s %4d s\n' "$name" "$((SECONDS - start))"
}
owned() {  # owned PATH: it exists, not empty, written by the container's user
    [[ -s $data/$1 ]] || { echo "docker/smoke.sh: $1 missing" >&2; exit 1; }
    local owner
    owner=$(stat -c %u "$data/$1")
    [[ $owner == "$uid" ]] || { echo "docker/smoke.sh: $1 owned by $owner" >&2; exit 1; }
}

echo "smoke run of $image (uid $uid), data in $data"
total=$SECONDS
who=$(podman run --rm --entrypoint id "$image" -u)
[[ $who == "$uid" ]] || { echo "docker/smoke.sh: runs as uid $who, expected $uid" >&2; exit 1; }
common=(--profile micro --seed 0)
if [[ $image == *-lean ]]; then
    for module in torch scipy; do
        if podman run --rm --entrypoint python "$image" -c "import $module" 2>/dev/null; then
            echo "docker/smoke.sh: $image is lean but imports $module" >&2
            exit 1
        fi
    done
    stage synth synth "${common[@]}" --out /data/dataset
    owned dataset/manifest.json
    digest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"])' \
        "$data/dataset/manifest.json")
    # plan: the component's command as a KFP task runs it (the executor, with an executor
    # input naming its parameters and output file).
    mkdir "$data/plan" && chown "$uid:$uid" "$data/plan"
    mapfile -d '' command < <("${PYTHON:-.venv/bin/python}" - <<'PY'
import json, sys
import yaml
with open("pipelines/compiled/benchmark.yaml", encoding="utf-8") as f:
    container = next(yaml.safe_load_all(f))["deploymentSpec"]["executors"]["exec-plan"]
executor_input = {
    "inputs": {"parameterValues": {"methods": "all", "seeds": [0], "world": 0, "method_py": ""}},
    "outputs": {"parameters": {"Output": {"outputFile": "/data/plan/Output"}},
                "outputFile": "/data/plan/executor_output.json"},
}
command = container["container"]["command"] + [
    json.dumps(executor_input) if a == "{{$}}" else a for a in container["container"]["args"]]
sys.stdout.write("\0".join(command))
PY
    )
    ((${#command[@]} > 3)) ||
        { echo "docker/smoke.sh: no plan command in pipelines/compiled/" >&2; exit 1; }
    entry=${command[0]}
    stage plan "${command[@]:1}"
    entry=salmubench
    owned plan/executor_output.json
    runs=$(python3 -c 'import json, sys
runs = json.load(open(sys.argv[1]))["parameterValues"]["Output"]
assert all(r["seed"] == 0 and r["world"] == 0 for r in runs), runs
print(" ".join(r["method"] for r in runs))' "$data/plan/executor_output.json")
    [[ " $runs " == *" $method "* ]] ||
        { echo "docker/smoke.sh: plan's runs ($runs) lack $method" >&2; exit 1; }
    if [[ -n $from ]]; then
        # report on the full image's evaluations, at the same path as there
        mounts=(--volume "$(realpath "$from/evals"):/data/evals:ro")
        stage report report --runs /data/evals --profile micro --out /data/report
        mounts=()
        for path in report/report.html report/leaderboard.json report/metrics.png; do
            owned "$path"
        done
        if [[ -f $from/report/leaderboard.json ]] &&
            ! cmp "$from/report/leaderboard.json" "$data/report/leaderboard.json"; then
            echo "docker/smoke.sh: the lean report differs from the full image's" >&2
            exit 1
        fi
    else
        echo "  report               skipped: no FROM folder (a kept full-image smoke run)"
    fi
    echo "smoke run passed in $((SECONDS - total)) s: $image (dataset digest $digest;" \
        "plan: $(wc -w <<<"$runs") runs)"
    exit 0
fi
# The tools the publish task runs as processes are in the image.
for tool in git dvc; do
    podman run --rm --entrypoint "$tool" "$image" --version >/dev/null ||
        { echo "docker/smoke.sh: '$tool --version' fails in $image" >&2; exit 1; }
done
stage synth synth "${common[@]}" --out /data/dataset
stage train-clean train --data /data/dataset --variant clean "${common[@]}" --out /data/clean
stage train-compromised train --data /data/dataset --variant compromised "${common[@]}" \
    --out /data/compromised
stage eval-clean eval --data /data/dataset --model /data/clean "${common[@]}" \
    --out /data/evals/clean --quiet
stage eval-compromised eval --data /data/dataset --model /data/compromised "${common[@]}" \
    --out /data/evals/compromised --quiet
stage "unlearn-$method" unlearn --data /data/dataset --model /data/compromised \
    --method "$method" "${common[@]}" --out "/data/$method"
stage "eval-$method" eval --data /data/dataset --model "/data/$method" "${common[@]}" \
    --clean /data/evals/clean --compromised /data/evals/compromised \
    --out "/data/evals/$method" --quiet
stage report report --runs /data/evals --profile micro --out /data/report

# What the stages left must be there, written by the container's user.
for path in dataset/manifest.json evals/"$method"/metrics.json report/report.html; do
    owned "$path"
done
echo "smoke run passed in $((SECONDS - total)) s: $image"
