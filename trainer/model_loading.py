"""Load the base model and tokenizer, quantized for QLoRA when asked."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BitsAndBytesConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from trainer.chat_template import CHATML_TEMPLATE
from trainer.config import Quantization
from trainer.errors import ModelLoadError, OutOfMemory
from trainer.results import RunEnvironment


def pick_device() -> tuple[str, str]:
    """(device, human-readable device name) of what this process will train on."""
    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_name(torch.cuda.current_device())
    return "cpu", "cpu"


def compute_dtype(device: str) -> torch.dtype:
    # bf16 where the hardware does it natively; fp32 on CPU, where bf16 matmuls are slow.
    if device == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device == "cuda":
        return torch.float16
    return torch.float32


def load_tokenizer(base_model: str, trust_remote_code: bool) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {base_model!r}: {exc}") from exc
    if tokenizer.chat_template is None:
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    base_model: str, quantization: Quantization, trust_remote_code: bool, attention: str = "sdpa"
) -> tuple[PreTrainedModel, RunEnvironment]:
    """The base model on the training device; ``attention`` is a transformers ``attn_implementation``."""
    device, device_name = pick_device()
    dtype = compute_dtype(device)
    kwargs: dict[str, object] = {
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
        "attn_implementation": attention,
    }
    if quantization is Quantization.NF4:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
        )
    if device == "cuda":
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # the launcher sets one GPU per process
    try:
        model = AutoModelForCausalLM.from_pretrained(base_model, **kwargs)
    except torch.OutOfMemoryError as exc:
        hint = "use quantization nf4, a smaller base model, or a GPU with more memory"
        raise OutOfMemory(f"{base_model!r} does not fit in GPU memory ({hint}): {exc}") from exc
    except (OSError, ValueError, ImportError) as exc:
        raise ModelLoadError(f"cannot load model {base_model!r}: {exc}") from exc
    environment = RunEnvironment(
        device=device, device_name=device_name, dtype=str(dtype).removeprefix("torch."), quantization=quantization.value
    )
    return model, environment
