# CPU image of gateway: `gateway serve` on 0.0.0.0:8000 as a non-root user, the embedded all-MiniLM-L6-v2
# inside, no network needed at run time. docs/containers.md has the commands.
#
#   docker build -t gateway:cpu .                     # torch from the PyTorch CPU index, the rest from PyPI
#   docker build --network none --build-arg WHEELHOUSE=wheelhouse -t gateway:cpu .        # offline
#
# CUDA variant (UNTESTED: no GPU where this project is built): the same file with torch's CUDA wheels, which
# bring their own CUDA runtime, so the base needs only the host driver (NVIDIA Container Toolkit, --gpus):
#
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t gateway:cuda .
#   docker run --gpus all -p 8000:8000 gateway:cuda
#
# No "# syntax=" line on purpose: it would make the builder fetch a frontend image from a registry.

# Any image with Python 3.11+ and its venv module: the official slim image (python in /usr/local/bin) or a
# Debian bookworm root with python3 + python3-venv (python in /usr/bin), as .ci/container_test.sh makes.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS builder
# WHEELHOUSE: a folder under wheelhouse/ of the build context holding every wheel needed (made with
# `pip wheel`, setuptools>=68 included: it builds gateway itself); the build then installs from it alone
# (--no-index) and needs no network. Empty: PyPI, with torch from TORCH_INDEX_URL.
ARG WHEELHOUSE=""
# The CPU wheel index keeps the CUDA wheels that PyPI's Linux torch pulls in (~5 GB) out of a CPU image;
# a CUDA index (.../whl/cu126, cu128: pick one the host driver supports) makes the CUDA image.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# A version specifier such as "==2.13.0"; empty: the newest torch the index (or wheelhouse) has.
ARG TORCH_VERSION=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml or the wheelhouse change.
COPY pyproject.toml /src/pyproject.toml
COPY wheelhouse /wheelhouse
RUN set -eu; \
    python3 -m venv /opt/gateway; \
    pip=/opt/gateway/bin/pip; \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt; \
    if [ -n "$WHEELHOUSE" ]; then \
        $pip install --no-index --find-links "/$WHEELHOUSE" "torch$TORCH_VERSION" -r /tmp/requirements.txt; \
    else \
        $pip install --index-url "$TORCH_INDEX_URL" "torch$TORCH_VERSION"; \
        $pip install -r /tmp/requirements.txt; \
    fi
COPY README.md /src/README.md
COPY gateway /src/gateway
RUN set -eu; \
    pip=/opt/gateway/bin/pip; \
    if [ -n "$WHEELHOUSE" ]; then \
        $pip install --no-index --find-links "/$WHEELHOUSE" --no-deps /src; \
    else \
        $pip install --no-deps /src; \
    fi; \
    /opt/gateway/bin/pip check; \
    /opt/gateway/bin/python -c "from gateway.engines.sources import embedded_model_dir as d; assert d(), 'no embedded model'"

FROM ${BASE_IMAGE}
# A fixed uid/gid, so a bind-mounted /data can be given to it: chown -R 10001:10001 FOLDER.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /srv/gateway --no-create-home \
        --shell /usr/sbin/nologin gateway \
    && mkdir -p /srv/gateway /data/huggingface \
    && chown -R gateway:gateway /data /srv/gateway
COPY --from=builder /opt/gateway /opt/gateway
# Settings: GATEWAY_* environment variables (docs/configuration.md), and a TOML file named by
# GATEWAY_CONFIG or found at config/gateway.toml of the working directory (mount a folder on
# /srv/gateway/config). Downloaded models (HF_HOME) live on the /data volume; the embedded one is in the image.
# Batch jobs' files and state (GATEWAY_DATA_DIR) live there too, so they survive the container.
ENV PATH=/opt/gateway/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    HF_HOME=/data/huggingface \
    GATEWAY_DATA_DIR=/data/gateway \
    TOKENIZERS_PARALLELISM=false
WORKDIR /srv/gateway
VOLUME ["/data"]
USER gateway
EXPOSE 8000
# /ready: 200 once every model is loaded, 503 before; no API key needed. Python's urllib: no curl here.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('GATEWAY_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["gateway", "serve"]
