"""Real QLoRA in this process: 4-bit NF4 base from bitsandbytes, LoRA adapters, loss falls.

Unlike a worker started without --gpu, the trainer called here takes the GPU
where CUDA is visible, so what these tests expect of the device follows the host.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.config import Hyperparameters, Quantization, RunSpec
from trainer.errors import InvalidTrainingData, ModelLoadError
from trainer.results import Progress
from trainer.train import train

FAST = Hyperparameters(n_epochs=4, learning_rate=3e-3, batch_size=4, max_seq_length=128)
HOST_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_qlora_trains_and_saves_adapter_on_the_hosts_device(
    tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    seen: list[Progress] = []
    result = train(RunSpec(tiny_model, sample_dataset, tmp_path, FAST), on_progress=seen.append)

    assert result.environment.quantization == "nf4" and result.environment.device == HOST_DEVICE
    assert [p.step for p in seen] == list(range(1, result.steps + 1))
    losses = [p.loss for p in seen if p.loss is not None]
    assert min(losses[-3:]) < 0.6 * losses[0]
    assert seen[-1].trained_tokens == result.trained_tokens > 0
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (result.adapter_dir / "adapter_config.json").is_file()


def test_base_weights_really_are_4bit(tiny_model: Path) -> None:
    import bitsandbytes as bnb

    from trainer.model_loading import load_model

    model, env = load_model(str(tiny_model), Quantization.NF4, trust_remote_code=False)
    q_proj = model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    assert q_proj.weight.quant_state.quant_type == "nf4"
    # fp32 on the CPU, where bf16 matmuls are slow; a 16-bit compute type on a GPU.
    assert env.dtype == "float32" if HOST_DEVICE == "cpu" else env.dtype in {"bfloat16", "float16"}


def test_16bit_lora_option_trains_without_quantization(tiny_model: Path, sample_dataset: Path, tmp_path: Path) -> None:
    hp = Hyperparameters(
        n_epochs=1, learning_rate=3e-3, batch_size=8, max_seq_length=128, quantization=Quantization.NONE
    )
    result = train(RunSpec(tiny_model, sample_dataset, tmp_path, hp))
    assert result.environment.quantization == "none"
    assert result.steps > 0


def test_unloadable_model_is_a_model_load_error(sample_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model"):
        train(RunSpec("no-such-org/no-such-model", sample_dataset, tmp_path))


def test_bad_data_is_an_invalid_training_data_error(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "oops"}\n')
    with pytest.raises(InvalidTrainingData, match="line 1"):
        train(RunSpec(str(tiny_model), bad, tmp_path))


@pytest.mark.gpu
def test_qlora_on_cuda_uses_bf16_and_paged_optimizer(tiny_model: Path, sample_dataset: Path, tmp_path: Path) -> None:
    assert torch.cuda.is_available()
    result = train(RunSpec(tiny_model, sample_dataset, tmp_path, FAST))
    assert result.environment.device == "cuda"
    assert result.environment.dtype in {"bfloat16", "float16"}
