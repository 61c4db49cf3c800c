#!/usr/bin/env bash
# What each deletion of docker/Dockerfile.lean's `slim` stage saves: builds that stage up to
# its installs (dependencies without bytecode, as the Dockerfile installs them) and prints
# `du` of each path the slimming deletes, and of the venv were all of it compiled.
# Usage: docker/lean-sizes.sh   (after docker/build.sh lean, whose pip.conf it reuses)
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/podman-env.sh
base=${BASE_IMAGE:-localhost/debian-py:bookworm}
dockerfile=$(mktemp "$PODMAN_DIR/Dockerfile.sizes.XXXXXX")
trap 'rm -f "$dockerfile"' EXIT
{
    # the wheel stage, and the slim stage up to (without) its slimming RUN
    sed -n '/^ARG BASE_IMAGE/p; /^FROM .* AS wheel/,/^RUN \/opt\/build\/bin\/pip wheel/p' \
        docker/Dockerfile.lean
    sed -n '/^FROM .* AS slim/,/^# The wheel/p' docker/Dockerfile.lean
    cat <<'DOCKERFILE'
RUN python3 -m pip --python /opt/venv/bin/python install --no-compile --no-deps /opt/salmubench/dist/*.whl \
    && site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && m() { name=$1; shift; printf '%-28s %8s KB\n' "$name" "$(du -sck "$@" 2>/dev/null | tail -n 1 | cut -f 1)"; } \
    && m 'root filesystem' / --exclude=/proc --exclude=/sys --exclude=/dev -x \
    && m 'docs, man, info, locale' /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale \
    && m 'wheels, caches, logs' /usr/share/python-wheels /var/cache /var/log \
    && m "base's pip, setuptools" /usr/lib/python3/dist-packages/pip /usr/lib/python3/dist-packages/setuptools \
        /usr/lib/python3/dist-packages/pkg_resources /usr/lib/python3/dist-packages/wheel \
    && m 'venv' /opt/venv \
    && m 'tests folders' $(find "$site" -type d -name tests) \
    && m '.pyi, .h' $(find "$site" -type f \( -name '*.pyi' -o -name '*.h' \)) \
    && m 'numpy include, f2py' "$site/numpy/_core/include" "$site/numpy/f2py" \
    && m 'mpl sample, images, web' "$site/matplotlib/mpl-data/sample_data" \
        "$site/matplotlib/mpl-data/images" "$site/matplotlib/backends/web_backend" \
    && m 'mpl afm, pdfcorefonts' "$site/matplotlib/mpl-data/fonts/afm" \
        "$site/matplotlib/mpl-data/fonts/pdfcorefonts" \
    && m 'mpl other ttf fonts' $(find "$site/matplotlib/mpl-data/fonts/ttf" -type f \
        -not -name 'DejaVuSans*' -not -name 'LastResort*') \
    && m 'fontTools .so' $(find "$site/fontTools" -name '*.so') \
    && m 'matplotlib closure' "$site"/matplotlib "$site"/fontTools "$site"/kiwisolver \
        "$site"/contourpy "$site"/cycler "$site"/pyparsing "$site"/packaging \
    && /opt/venv/bin/python -m compileall -q "$site" >/dev/null 2>&1; m 'venv, all compiled' /opt/venv
DOCKERFILE
} >"$dockerfile"
volumes=(--volume "$PODMAN_DIR/pip.conf:/etc/pip.conf:ro")
for index in /opt/pypi-more /opt/pypi; do
    [[ -d $index/simple ]] && volumes+=(--volume "$index:$index:ro")
done
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    volumes+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
podman build --no-cache --file "$dockerfile" --build-arg BASE_IMAGE="$base" "${volumes[@]}" \
    --tag localhost/salmubench-lean-sizes:tmp . 2>&1 | grep -E ' KB$'
podman rmi localhost/salmubench-lean-sizes:tmp >/dev/null
