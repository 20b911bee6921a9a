# The Docker action: `raccoon paint` on ONNX Runtime. No PyTorch, no CUDA, no compiler in the image.
# A release pins action.yml to this image prebuilt on ghcr.io (docs/releasing.md); `main` and forks build it on
# every workflow run, so the slow layers come first and change least.

FROM docker.io/library/debian:bookworm-slim AS base
ARG DEBIAN_FRONTEND=noninteractive
# tzdata: the `timezone` input needs the IANA database; named so the image keeps it whatever the base holds.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tzdata \
 && rm -rf /var/lib/apt/lists/*

# The virtual environment: raccoon-action's dependencies, GitHub client included.
FROM base AS venv
ARG DEBIAN_FRONTEND=noninteractive
# A CA bundle for pip when PyPI sits behind a proxy; unset on GitHub.
ARG PIP_CERT
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
# requirements.txt is the lock of requirements.in (pyproject.toml's dependencies), compiled by pip-compile: every
# package at one version, each file checked against its SHA-256 (--require-hashes also refuses any package the
# lock does not name), wheels only. The same release of the action paints the same bytes on every run.
COPY requirements.txt /tmp/
# No bytecode at install: a run imports a fraction of what would be compiled (see the last stage). Left out after
# install: pip; cryptography, which PyGithub needs only to sign GitHub App tokens (the action sends a token as it
# is); PyPI's tzdata, which Python reads only where the system has no zone database, and this one has Debian's;
# the packages' test suites; ONNX Runtime's model-conversion tools (transformers, quantization, tools), which
# inference never imports; and its C library libonnxruntime.so (28 MB), which the Python module never loads: it
# holds a runtime of its own.
RUN /opt/venv/bin/pip install --no-cache-dir --no-compile --disable-pip-version-check \
      ${PIP_CERT:+--cert "$PIP_CERT"} --require-hashes --only-binary :all: -r /tmp/requirements.txt \
 && /opt/venv/bin/pip check --disable-pip-version-check \
 && /opt/venv/bin/pip uninstall --yes --quiet cryptography tzdata pip setuptools \
 && find /opt/venv \( -name tests -o -path "*/onnxruntime/transformers" -o -path "*/onnxruntime/quantization" \
      -o -path "*/onnxruntime/tools" \) -type d -prune -exec rm -rf {} + \
 && rm /opt/venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*

FROM base
COPY --from=venv /opt/venv /opt/venv
COPY weights /opt/raccoon-action/weights
COPY raccoon /opt/raccoon-action/raccoon
COPY entrypoint.py /opt/raccoon-action/entrypoint.py
ENV PATH=/opt/venv/bin:$PATH \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    RACCOON_WEIGHTS=/opt/raccoon-action/weights
# Bytecode for what a run imports, and only that (7 MB; for every module installed it would be 15 MB, all of
# it pulled by every run): the action runs once at build time, offline (the GitHub search refused at once, so it
# paints the date alone: 1 step, 64 px), writing bytecode. Each run then starts about 0.5 s sooner; an entrypoint
# that cannot paint fails the build.
RUN mkdir -p /github/workspace && cd /github/workspace \
 && PYTHONDONTWRITEBYTECODE= GITHUB_API_URL=http://127.0.0.1:9 RACCOON_GITHUB_RETRIES=0 INPUT_USERNAME=octocat \
    INPUT_DATE=2026-01-06 INPUT_STEPS=1 INPUT_SIZE=64 INPUT_ON_ERROR=date-only \
    python /opt/raccoon-action/entrypoint.py > /dev/null \
 && rm -rf /github
# No USER and no WORKDIR: GitHub runs the container as root in /github/workspace.
ENTRYPOINT ["/opt/venv/bin/python", "/opt/raccoon-action/entrypoint.py"]
