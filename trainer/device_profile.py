"""Measure what the automatic batch size depends on: accelerator memory, model size, activations per token."""

from __future__ import annotations

import torch
from transformers import PretrainedConfig, PreTrainedModel

from trainer.auto_hyperparameters import DeviceProfile
from trainer.auto_hyperparameters import activation_bytes_per_token as activation_estimate
from trainer.kernels import KernelPlan


def activation_bytes_per_token(config: PretrainedConfig, kernels: KernelPlan) -> int:
    """``trainer.auto_hyperparameters.activation_bytes_per_token`` for this model's shape and checkpointing."""
    text = config.get_text_config()
    hidden = int(text.hidden_size)
    intermediate = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    layers = int(text.num_hidden_layers)
    return activation_estimate(hidden, layers, intermediate, kernels.checkpoint_every, kernels.checkpoint_offload)


def data_parallel_processes() -> int:
    """How many processes share each optimizer step (``trainer.distributed`` starts the process group)."""
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def profile_device(model: PreTrainedModel, device: str, kernels: KernelPlan) -> DeviceProfile:
    model_bytes = int(model.get_memory_footprint())
    processes = data_parallel_processes()
    if device != "cuda":
        return DeviceProfile(device, 0, model_bytes, activation_bytes_per_token=0, processes=processes)
    memory = int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    return DeviceProfile(device, memory, model_bytes, activation_bytes_per_token(model.config, kernels), processes)
