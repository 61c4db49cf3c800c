#!/usr/bin/env bash
# Run the micro pipeline's stages inside the component image, one `podman run` each, as
# the image's non-root user and under the pods' hardening (read-only root filesystem, tmpfs
# /tmp, no capabilities, no privilege escalation): synth -> train clean and compromised ->
# eval both -> unlearn (one method) -> eval it -> report. Data in a mounted host folder.
# Fails loudly (the stage's output and status) when any stage fails.
# A lean image (tag ending -lean, docker/Dockerfile.lean) runs only the torch-free stage,
# synth, and must hold no torch.
# Usage: docker/smoke.sh [IMAGE]   (default: the last image docker/build.sh built)
#        docker/smoke.sh lean      (the last lean image docker/build.sh lean built)
#   METHOD  unlearning method (default neg_grad)   KEEP=1  keep the data folder
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/podman-env.sh
image=${1:-cpu}
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
data=$(mktemp -d "${TMPDIR:-/tmp}/salmubench-smoke.XXXXXX")
chown "$uid:$uid" "$data"
[[ ${KEEP:-0} == 1 ]] || trap 'rm -rf "$data"' EXIT

stage() {  # stage NAME ARGS...: `salmubench ARGS...` in a fresh container
    local name=$1
    shift
    local start=$SECONDS
    if ! podman run --rm --read-only --tmpfs /tmp:rw,size=1g,mode=1777 \
        --cap-drop ALL --security-opt no-new-privileges \
        --volume "$data:/data" --workdir /data "$image" "$@" >"$data/$name.log" 2>&1; then
        tail -n 30 "$data/$name.log" >&2
        echo "docker/smoke.sh: stage $name FAILED in $image: salmubench $*" >&2
        exit 1
    fi
    printf '  %-20s %4d s\n' "$name" "$((SECONDS - start))"
}

echo "smoke run of $image (uid $uid), data in $data"
total=$SECONDS
who=$(podman run --rm --entrypoint id "$image" -u)
[[ $who == "$uid" ]] || { echo "docker/smoke.sh: runs as uid $who, expected $uid" >&2; exit 1; }
common=(--profile micro --seed 0)
if [[ $image == *-lean ]]; then
    if podman run --rm --entrypoint python "$image" -c "import torch" 2>/dev/null; then
        echo "docker/smoke.sh: $image is lean but imports torch" >&2
        exit 1
    fi
    stage synth synth "${common[@]}" --out /data/dataset
    [[ -s $data/dataset/manifest.json ]] || { echo "docker/smoke.sh: no manifest" >&2; exit 1; }
    owner=$(stat -c %u "$data/dataset/manifest.json")
    [[ $owner == "$uid" ]] || { echo "docker/smoke.sh: outputs owned by $owner" >&2; exit 1; }
    digest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"])' \
        "$data/dataset/manifest.json")
    echo "smoke run passed in $((SECONDS - total)) s: $image (dataset digest $digest)"
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
    [[ -s $data/$path ]] || { echo "docker/smoke.sh: $path missing" >&2; exit 1; }
done
owner=$(stat -c %u "$data/report/report.html")
[[ $owner == "$uid" ]] || { echo "docker/smoke.sh: outputs owned by $owner" >&2; exit 1; }
echo "smoke run passed in $((SECONDS - total)) s: $image"
