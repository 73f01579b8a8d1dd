"""Merge the trained adapter into a 16-bit copy of the base model, for serving without peft."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from trainer.model_loading import compute_dtype, pick_device


def merge_adapter(
    base_model: str, adapter_dir: Path, output_dir: Path, tokenizer: PreTrainedTokenizerBase, trust_remote_code: bool
) -> Path:
    """Reload the base unquantized (never merge into NF4 weights: that would re-quantize the sum) and merge.

    Saved in bf16/fp16 on CUDA; on CPU in fp32, since that is what the CPU computed in.
    """
    device, _ = pick_device()
    dtype: torch.dtype = compute_dtype(device)
    base = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype, trust_remote_code=trust_remote_code)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
