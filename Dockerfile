# The Docker action: `raccoon paint` on ONNX Runtime. No PyTorch, no CUDA, no compiler in the image.
# GitHub builds this file on every workflow run, so the slow layers come first and change least.

FROM docker.io/library/debian:bookworm-slim AS base
ARG DEBIAN_FRONTEND=noninteractive
# tzdata: the `timezone` input needs the IANA database; named so the image keeps it whatever the base holds.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tzdata \
 && rm -rf /var/lib/apt/lists/*

# The virtual environment: the painting dependencies and the GitHub client, read from pyproject.toml.
FROM base AS venv
ARG DEBIAN_FRONTEND=noninteractive
# A CA bundle for pip when PyPI sits behind a proxy; unset on GitHub.
ARG PIP_CERT
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
# The dependencies named in pyproject.toml, at the exact versions of constraints.txt: the same release of the
# action paints the same bytes on every run.
COPY pyproject.toml constraints.txt /tmp/
# No bytecode at install: GitHub builds this image on every run, and a run imports a fraction of what
# would be compiled. Left out after install: pip; cryptography, which PyGithub needs only to sign
# GitHub App tokens (the action sends a token as it is); the packages' test suites; ONNX Runtime's
# model-conversion tools (transformers, quantization, tools), which inference never imports; and its C library
# libonnxruntime.so (28 MB), which the Python module never loads: it holds a runtime of its own.
RUN python3 -c 'import tomllib; project = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
print("\n".join(project["dependencies"] + project["optional-dependencies"]["github"]))' > /tmp/requirements.txt \
 && /opt/venv/bin/pip install --no-cache-dir --no-compile --disable-pip-version-check \
      ${PIP_CERT:+--cert "$PIP_CERT"} -r /tmp/requirements.txt -c /tmp/constraints.txt \
 && /opt/venv/bin/pip uninstall --yes --quiet cryptography pip setuptools \
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
# No USER and no WORKDIR: GitHub runs the container as root in /github/workspace.
ENTRYPOINT ["/opt/venv/bin/python", "/opt/raccoon-action/entrypoint.py"]
