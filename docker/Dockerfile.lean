# syntax=docker/dockerfile:1
# The lean image: the stages that need no model (synth today; plan and report once they
# import no torch, see tests/test_torch_free.py) without torch, open_clip, webdataset or
# scikit-learn: a few hundred MB instead of 6.8 GB, so such a pod starts in seconds. Same
# package, same `salmubench <stage>` command, same non-root user as docker/Dockerfile.
#   build:   docker/build.sh lean (tags it <version>-g<rev>-lean), or
#            docker build -f docker/Dockerfile.lean -t REGISTRY/salmubench:TAG-lean .
#   deps:    requirements/lean.txt (docker/freeze_image_requirements.py --lean): exactly
#            the versions of requirements/image.txt, for the torch-free stages and the KFP
#            executor.
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

# --- the runtime: a venv without pip (the base's pip installs into it), deps, then code ---
# `python3` is the base's interpreter until PATH puts the venv first, after the installs.
FROM ${BASE_IMAGE} AS lean
ARG UID=10001
RUN groupadd --gid "${UID}" salmubench \
    && useradd --uid "${UID}" --gid "${UID}" --create-home --shell /usr/sbin/nologin salmubench
ENV VIRTUAL_ENV=/opt/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements/lean.txt /opt/salmubench/requirements.txt
# numpy's own test suites (about 17 MB) are never imported at run time.
RUN python3 -m venv --without-pip "${VIRTUAL_ENV}" \
    && python3 -m pip --python "${VIRTUAL_ENV}/bin/python" install --no-cache-dir --no-deps \
        -r /opt/salmubench/requirements.txt \
    && python3 -m pip --python "${VIRTUAL_ENV}/bin/python" check \
    && find "${VIRTUAL_ENV}"/lib/python3*/site-packages/numpy -depth -type d -name tests \
        -exec rm -rf {} +
COPY params.yaml /opt/salmubench/params.yaml
COPY --from=wheel /dist/ /opt/salmubench/dist/
RUN python3 -m pip --python "${VIRTUAL_ENV}/bin/python" install --no-cache-dir --no-deps \
        /opt/salmubench/dist/*.whl \
    && rm -rf /opt/salmubench/dist
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SALMUBENCH_PARAMS=/opt/salmubench/params.yaml \
    XDG_CACHE_HOME=/tmp/cache
# No `pip check` after the wheel: its metadata requires torch, which this image leaves out
# on purpose. Instead: the stage's command and the KFP executor load, and torch is absent.
RUN salmubench synth --help >/dev/null \
    && python -c "import salmubench.data.synth, salmubench_components.stages, kfp.dsl.executor_main" \
    && ! python -c "import torch" 2>/dev/null
WORKDIR /home/salmubench
USER ${UID}:${UID}
HEALTHCHECK NONE
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="salmubench (lean: synth, no torch)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/salmubench/salmubench" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["salmubench"]
CMD ["--help"]
