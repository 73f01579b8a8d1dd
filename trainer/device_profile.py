"""Measure what the automatic batch size depends on: accelerator memory, model size, activations per token."""

from __future__ import annotations

import torch
from transformers import PretrainedConfig, PreTrainedModel

from trainer.auto_hyperparameters import DeviceProfile

BYTES_16BIT = 2


def activation_bytes_per_token(config: PretrainedConfig) -> int:
    """An estimate for 16-bit training with activation checkpointing, as the trainer runs on a GPU.

    Each decoder layer keeps its input (hidden_size values per token); the backward pass recomputes one layer
    at a time and holds its activations and their gradients: about 6 x hidden_size for attention (q, k, v,
    output, norms) and 3 x intermediate_size for the gated MLP. The LM head is no concern: TRL computes the
    loss in tiles without materialising the logits.
    """
    text = config.get_text_config()
    hidden = int(text.hidden_size)
    layers = int(text.num_hidden_layers)
    intermediate = int(getattr(text, "intermediate_size", None) or 4 * hidden)
    kept_inputs = layers * hidden * BYTES_16BIT
    one_layer_recomputed = 2 * (6 * hidden + 3 * intermediate) * BYTES_16BIT
    return kept_inputs + one_layer_recomputed


def data_parallel_processes() -> int:
    """How many processes share each optimizer step (``trainer.distributed`` starts the process group)."""
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def profile_device(model: PreTrainedModel, device: str) -> DeviceProfile:
    model_bytes = int(model.get_memory_footprint())
    processes = data_parallel_processes()
    if device != "cuda":
        return DeviceProfile(device, 0, model_bytes, activation_bytes_per_token=0, processes=processes)
    memory = int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    return DeviceProfile(device, memory, model_bytes, activation_bytes_per_token(model.config), processes)
