"""What the trainer's tests need, and nothing of the service: a tiny model, the sample dataset, the gpu marker.

``tests/conftest.py`` imports these. A machine with only the trainer stack installed (the GPU machine, see
``bench/gpu_session.sh``) runs the trainer's tests without the service's conftest:

    python -m pytest --confcutdir=tests/trainer -p tests.trainer_fixtures tests/trainer/test_kernels.py
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen3")


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trainer.sample_data import write_sample_dataset

    return write_sample_dataset(tmp_path_factory.mktemp("datasets") / "capitals.jsonl")
