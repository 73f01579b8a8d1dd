# tuneq API and worker image (GPU). Build: docker build -t tuneq .
FROM pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    TUNEQ_DATA_ROOT=/data HF_HOME=/data/hf-cache
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY core ./core
COPY worker ./worker
COPY trainer ./trainer
COPY tuneq ./tuneq
COPY migrations ./migrations
# The base image's CUDA torch satisfies the "torch>=2.4" requirement, so pip keeps it.
RUN pip install .

VOLUME ["/data"]
EXPOSE 8000
CMD ["tuneq", "api", "--host", "0.0.0.0", "--port", "8000"]
