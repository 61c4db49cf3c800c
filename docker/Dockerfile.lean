# syntax=docker/dockerfile:1
# The lean image: the stages that need no model (synth, plan, report: tests/test_torch_free.py)
# without torch, open_clip, webdataset, scikit-learn or scipy: a few hundred MB instead of
# 6.8 GB, so such a pod starts in seconds. Same package, same `salmubench <stage>` command,
# same non-root user as docker/Dockerfile.
#   build:   docker/build.sh lean (tags it <version>-g<rev>-lean), or
#            docker build -f docker/Dockerfile.lean -t REGISTRY/salmubench:TAG-lean .
#   deps:    requirements/lean.txt (docker/freeze_image_requirements.py --lean): exactly
#            the versions of requirements/image.txt, for the torch-free stages and the KFP
#            executor.
#   size:    what no stage reads is deleted from the whole root filesystem (stage `slim`),
#            which is then copied into an empty image as one layer (a deleted file in a
#            later layer would still be shipped in the earlier one). docker/README.md has
#            what each deletion saves.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# --- the wheel of this package, built with pinned build tools, never shipped itself -----
FROM ${BASE_IMAGE} AS wheel
WORKDIR /src
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir setuptools==84.2.1 wheel==0.45.1
COPY pyproject.toml README.md ./
COPY src/ src/
COPY components/ components/
COPY pipelines/ pipelines/
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist .

# --- the runtime's files: a venv without pip (the base's pip installs into it), then slimmed
# `python3` is the base's interpreter until PATH puts the venv first, after the installs.
FROM ${BASE_IMAGE} AS slim
ARG UID=10001
RUN groupadd --gid "${UID}" salmubench \
    && useradd --uid "${UID}" --gid "${UID}" --create-home --shell /usr/sbin/nologin salmubench
ENV VIRTUAL_ENV=/opt/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/lean.txt /opt/salmubench/requirements.txt
# --no-compile: bytecode is written below for the modules the stages import, not for all.
RUN python3 -m venv --without-pip "${VIRTUAL_ENV}" \
    && python3 -m pip --python "${VIRTUAL_ENV}/bin/python" install --no-compile --no-deps \
        -r /opt/salmubench/requirements.txt \
    && python3 -m pip --python "${VIRTUAL_ENV}/bin/python" check
COPY params.yaml /opt/salmubench/params.yaml
COPY --from=wheel /dist/ /opt/salmubench/dist/
ENV PYTHONUNBUFFERED=1 \
    SALMUBENCH_PARAMS=/opt/salmubench/params.yaml \
    XDG_CACHE_HOME=/tmp/cache
# The wheel (no `pip check` after it: its metadata requires torch, left out on purpose).
# What no stage reads at run time:
# - Debian's docs, man pages, message translations; the base's pip, setuptools and wheels
#   (the venv has no pip; nothing is installed at run time); caches and logs;
# - the test suites inside packages; C headers, type stubs, numpy's f2py;
# - matplotlib's sample data and images, its fonts but DejaVu Sans (the plots' default
#   family) and LastResort (its fallback), the web backend's files (the report draws with
#   Agg into PNG);
# - fontTools' optional compiled speed-ups (each has a pure-Python twin; matplotlib reads
#   one glyph-name table from it).
# Then bytecode for exactly what the stages and the KFP executor import (a pod's root
# filesystem is read-only: nothing would be cached at run time), and the checks: the
# stages' code loads, a plot draws, and torch is absent.
RUN python3 -m pip --python "${VIRTUAL_ENV}/bin/python" install --no-compile --no-deps \
        /opt/salmubench/dist/*.whl \
    && rm -rf /opt/salmubench/dist \
    && python="${VIRTUAL_ENV}/bin/python" \
    && site="$("${python}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/* \
        /usr/share/python-wheels /var/cache/* /var/log/* \
        /usr/lib/python3/dist-packages/pip /usr/lib/python3/dist-packages/pip-* \
        /usr/lib/python3/dist-packages/setuptools /usr/lib/python3/dist-packages/setuptools-* \
        /usr/lib/python3/dist-packages/pkg_resources /usr/lib/python3/dist-packages/wheel \
        /usr/lib/python3/dist-packages/wheel-* /usr/lib/python3/dist-packages/_distutils_hack \
        /usr/lib/python3/dist-packages/distutils-precedence.pth \
        /usr/local/lib/python3*/site-packages/pip /usr/local/lib/python3*/site-packages/pip-* \
        /usr/local/lib/python3*/site-packages/setuptools* \
    && find "${site}" -depth -type d -name tests -exec rm -rf {} + \
    && find "${site}" -type f \( -name '*.pyi' -o -name '*.h' \) -delete \
    && rm -rf "${site}/numpy/_core/include" "${site}/numpy/f2py" \
        "${site}/matplotlib/mpl-data/sample_data" "${site}/matplotlib/mpl-data/images" \
        "${site}/matplotlib/backends/web_backend" \
        "${site}/matplotlib/mpl-data/fonts/afm" "${site}/matplotlib/mpl-data/fonts/pdfcorefonts" \
    && find "${site}/matplotlib/mpl-data/fonts/ttf" -type f -not -name 'DejaVuSans*' \
        -not -name 'LastResort*' -delete \
    && find "${site}/fontTools" -type f -name '*.so' -delete \
    && "${python}" -c "import salmubench.cli, salmubench.data.synth, salmubench.report.stage, \
salmubench.report.plots, salmubench.unlearn, salmubench_components.stages, \
kfp.dsl.executor_main, minio, prometheus_client, faker" \
    && HOME=/tmp "${python}" -c "import matplotlib; matplotlib.use('Agg'); \
import matplotlib.pyplot as plt; fig, ax = plt.subplots(); ax.plot([0, 1]); ax.set_title('x'); \
fig.savefig('/tmp/check.png')" \
    && rm -rf /tmp/check.png /tmp/cache /tmp/matplotlib* \
    && "${VIRTUAL_ENV}/bin/salmubench" synth --help >/dev/null \
    && ! "${python}" -c "import torch" 2>/dev/null \
    && ! "${python}" -c "import scipy" 2>/dev/null

# --- the image: the slimmed root filesystem as one layer, and today's settings -----------
FROM scratch AS lean
# The whole root filesystem on purpose: deleting files in a layer above the base's would not
# make the image any smaller (the base layer still ships them).
# hadolint ignore=DL3067
COPY --from=slim / /
ARG UID=10001
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SALMUBENCH_PARAMS=/opt/salmubench/params.yaml \
    XDG_CACHE_HOME=/tmp/cache
WORKDIR /home/salmubench
USER ${UID}:${UID}
HEALTHCHECK NONE
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="salmubench (lean: synth, plan, report; no torch)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/salmubench/salmubench" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["salmubench"]
CMD ["--help"]
