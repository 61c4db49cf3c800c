#!/usr/bin/env bash
# Build the component image with podman, tagged <version>-g<rev> (salmubench_components),
# and print its size and build time.
# Usage: docker/build.sh [cpu|cuda|lean]       (default cpu; lean: docker/Dockerfile.lean,
#                                               the torch-free stages, tag <cpu tag>-lean)
#   BASE_IMAGE   base to build on (default: localhost/debian-py:bookworm, made by
#                docker/base-image.sh, as no registry is reachable here; elsewhere
#                python:3.11-slim-bookworm works the same)
#   PYTHON       interpreter with salmubench_components importable (default .venv/bin/python)
# Writes the image reference to $SALMUBENCH_PODMAN_DIR/image-<target>.
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/podman-env.sh
target=${1:-cpu}
python=${PYTHON:-.venv/bin/python}
base=${BASE_IMAGE:-localhost/debian-py:bookworm}
# Both targets' references, computed once: a commit made during the build changes nothing.
cpu_image=$("$python" -m salmubench_components --target cpu)
cuda_image=$("$python" -m salmubench_components --target cuda)
dockerfile=docker/Dockerfile
case $target in
    cpu) image=$cpu_image ;;
    cuda) image=$cuda_image ;;
    lean) image=$cpu_image-lean dockerfile=docker/Dockerfile.lean ;;
    *) echo "docker/build.sh: unknown target '$target'; valid: cpu, cuda, lean" >&2; exit 2 ;;
esac
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=$("$python" -c 'from salmubench import __version__; print(__version__)')

if [[ $base == localhost/debian-py:* ]]; then
    docker/base-image.sh "$base"
fi

# pip inside the build: the host's CA bundle and, where this machine keeps them, its local
# wheel indexes (torch and the CUDA libraries, ~3 GB not downloaded again). Mounted for the
# RUN steps only (podman build --volume): nothing of it ends up in the image.
pip_conf="$PODMAN_DIR/pip.conf"
volumes=(--volume "$pip_conf:/etc/pip.conf:ro")
indexes=()
for index in /opt/pypi-more /opt/pypi; do
    if [[ -d $index/simple ]]; then
        volumes+=(--volume "$index:$index:ro")
        indexes+=("file://$index/simple")
    fi
done
{
    echo "[global]"
    echo "timeout = 180"
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
        echo "cert = /etc/ssl/certs/ca-certificates.crt"
    fi
    if ((${#indexes[@]})); then
        echo "extra-index-url = ${indexes[*]}"
    fi
} > "$pip_conf"
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    volumes+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi

echo "building $image (target $target, base $base)"
start=$SECONDS
log="$PODMAN_DIR/build-$target.log"
if ! podman build --file "$dockerfile" --target "$target" \
    --build-arg BASE_IMAGE="$base" \
    --build-arg VERSION="$version" \
    --build-arg REVISION="$revision" \
    "${volumes[@]}" --tag "$image" . >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "docker/build.sh: building $image FAILED (full log: $log)" >&2
    exit 1
fi
seconds=$((SECONDS - start))
# Storage stays tidy: this target's images of earlier revisions, and intermediate images
# (the wheel stage, replaced layers), are removed; the other target's image is kept.
repository=${image%:*}
podman image ls --noheading --format '{{.Repository}}:{{.Tag}}' --filter "reference=$repository" |
    while read -r old; do
        [[ $old == "$image" ]] && continue
        old_target=cpu
        [[ $old == *-cuda ]] && old_target=cuda
        [[ $old == *-lean ]] && old_target=lean
        [[ $old_target != "$target" ]] || podman rmi "$old" >/dev/null
    done
# Working containers of an interrupted build (status "Storage") pin whole layers.
podman ps --all --external --format '{{.ID}} {{.Status}}' | awk '$2 == "Storage" { print $1 }' |
    while read -r id; do podman rm --force "$id" >/dev/null; done
podman image prune --force >/dev/null
printf '%s\n' "$image" > "$PODMAN_DIR/image-$target"
size=$(podman image ls --noheading --format '{{.Size}}' --filter "reference=$image")
bytes=$(podman image inspect --format '{{.Size}}' "$image")
echo "built $image in $seconds s; size $size ($((bytes / 1000000)) MB)"
