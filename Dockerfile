# Two images from one file:
#   docker build --target api    -t tuneq-api .      # slim: FastAPI, no torch, no CUDA (~200 MB)
#   docker build --target worker -t tuneq-worker .   # CUDA runtime + CUDA torch + the trainer
# Both install the same wheel with constraints.txt, so they run the versions the tests ran.

# ---- wheel: build tuneq once, install it in both images ------------------------------------
FROM python:3.12-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY core ./core
COPY worker ./worker
COPY trainer ./trainer
COPY tuneq ./tuneq
COPY migrations ./migrations
RUN pip wheel --no-deps --no-cache-dir -w /dist .

# ---- api: the HTTP API, the migrate job and the webhook dispatcher ---------------------------
FROM python:3.12-slim AS api
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TUNEQ_DATA_ROOT=/data TUNEQ_METRICS_DIR=/run/tuneq/metrics TUNEQ_API_HOST=0.0.0.0
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /dist /tmp/dist
# No [train] extra: the API never imports torch, so the image does not carry it.
RUN pip install -c /tmp/constraints.txt /tmp/dist/tuneq-*.whl && rm -rf /tmp/dist \
    && useradd --uid 10001 --create-home tuneq && mkdir -p /data /run/tuneq/metrics \
    && chown tuneq /data /run/tuneq/metrics
USER tuneq
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2)"]
CMD ["tuneq", "api", "--host", "0.0.0.0", "--port", "8000"]

# ---- worker: one per GPU ----------------------------------------------------------------------
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS worker
# constraints.txt pins torch to the version the tests ran, and on CPU boxes that is a CPU build.
# Here torch comes first from PyTorch's CUDA index at the same version (override both for other
# CUDA versions); the pin is then dropped from the constraints so pip keeps this CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.13.0
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TUNEQ_DATA_ROOT=/data TUNEQ_METRICS_DIR=/run/tuneq/metrics TUNEQ_METRICS_PORT=9400 \
    HF_HOME=/data/hf-cache VIRTUAL_ENV=/opt/tuneq PATH=/opt/tuneq/bin:$PATH
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/tuneq
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /dist /tmp/dist
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION" \
    && grep -v '^torch==' /tmp/constraints.txt > /tmp/constraints-cuda.txt \
    && pip install -c /tmp/constraints-cuda.txt "$(ls /tmp/dist/tuneq-*.whl)[train,gpu]" \
    && python -c "import torch; assert torch.version.cuda, 'the worker image needs a CUDA build of torch'" \
    && rm -rf /tmp/dist \
    && useradd --uid 10001 --create-home tuneq && mkdir -p /data /run/tuneq/metrics \
    && chown tuneq /data /run/tuneq/metrics
USER tuneq
VOLUME ["/data"]
EXPOSE 9400
# SIGTERM checkpoints the running job and requeues it; give it TUNEQ_GRACEFUL_STOP_SECONDS (+ margin).
STOPSIGNAL SIGTERM
CMD ["tuneq", "worker", "--gpu", "0"]
