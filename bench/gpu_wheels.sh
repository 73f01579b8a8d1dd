#!/usr/bin/env bash
# Run HERE (a machine with PyPI), before bench/gpu_session.sh runs on the GPU machine, which has no index.
# Downloads the wheels the trainer and its gpu tests need beyond what the GPU machine has (Python 3.12,
# CUDA torch with triton, numpy, pyarrow, tokenizers, safetensors, huggingface_hub; see /work/shared/GPU.md)
# into .whl/ (git-ignored), about 62 MB; the device tool carries at most 64 MiB, so carry only `.whl`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
rm -rf .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  bitsandbytes==0.50.2 trl==1.16.0 peft==0.21.2 transformers==5.23.0 datasets==5.2.0 \
  accelerate==1.15.0 dill multiprocess pydantic==2.14.3 pydantic-core annotated-types \
  typing-inspection typing_extensions liger-kernel==0.8.5 \
  pytest==9.2.0 pluggy iniconfig pytest-timeout==2.4.0
du -sh .whl
