"""Padding-free packing is exact on every attention path the trainer can choose: examples packed together
neither see each other nor change the loss.

The micro-batches come from the trainer's own row preparation and collators (``trainer.batches``), as in
training. transformers 5 builds a block-diagonal causal mask from the reset position ids when no attention
mask is given, per batch row, for "sdpa", "eager" and "flex_attention" alike, so this holds on CPU. It does
so only without a KV cache: with ``use_cache=True`` the model skips the packed-sequence check and examples
leak into each other. TRL's ``SFTTrainer.compute_loss`` sets ``use_cache=False`` on every batch, so the
forwards here do the same.

flex_attention has no backward pass on CPU, so the trainer never picks it there, but its forward runs here
and proves its document mask; flash-attn needs CUDA (and a 16-bit model), so it runs only with a GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from core.dataset_formats import Example, Message
from trainer.attention import AttentionKernel, plan_for
from trainer.batches import collator_for, prepare_rows
from trainer.tokenize import tokenize_example

QUESTIONS = (
    "What is the capital of France?",
    "Name the capital city of Kenya.",
    "Which city is the capital of Peru?",
    "And Japan?",
)
ANSWERS = (
    "The capital of France is Paris.",
    "The capital of Kenya is Nairobi.",
    "The capital of Peru is Lima.",
    "Tokyo.",
)
KERNELS = [
    AttentionKernel.SDPA,
    AttentionKernel.EAGER,
    AttentionKernel.FLEX,
    pytest.param(AttentionKernel.FLASH, marks=pytest.mark.gpu),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model)


def _model(tiny_model: Path, kernel: AttentionKernel) -> PreTrainedModel:
    # flash-attn only runs on CUDA in 16 bits; every other kernel is checked in fp32 on the CPU.
    on_gpu = kernel is AttentionKernel.FLASH
    dtype = torch.bfloat16 if on_gpu else torch.float32
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=dtype, attn_implementation=kernel.value)
    return model.to("cuda" if on_gpu else "cpu").eval()


def _tolerance(kernel: AttentionKernel) -> dict[str, float]:
    return {"rtol": 2e-2, "atol": 2e-2} if kernel is AttentionKernel.FLASH else {"rtol": 1e-5, "atol": 1e-5}


def _tokenized(tokenizer: PreTrainedTokenizerBase, questions: tuple[str, ...]) -> Dataset:
    rows = []
    for question, answer in zip(questions, ANSWERS, strict=True):
        example = Example(messages=(Message("user", question), Message("assistant", answer)))
        rows.append(tokenize_example(tokenizer, example, train_on_inputs=False))
    return Dataset.from_dict(
        {"input_ids": [r.input_ids for r in rows], "assistant_masks": [r.assistant_masks for r in rows]}
    )


def _two_rows_width(tokenized: Dataset) -> int:
    """A row width that packs the two longest examples into one full row and the others into a padded one."""
    lengths = sorted((len(ids) for ids in tokenized["input_ids"]), reverse=True)
    return lengths[0] + lengths[1]


def _packed_batch(tokenized: Dataset, width: int, kernel: AttentionKernel, pad: int, device: str) -> dict[str, Any]:
    rows = prepare_rows(tokenized, width, packing=True)
    batch = collator_for(plan_for(kernel, "test").layout, True, pad)(list(rows))
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}


def _padded_batch(tokenized: Dataset, pad: int, device: str) -> dict[str, Any]:
    rows = prepare_rows(tokenized, 4096, packing=False)
    batch = DataCollatorForLanguageModeling(pad_token_id=pad, padding_free=False)(list(rows))
    return {key: value.to(device) for key, value in batch.items()}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rows", ["one row", "two rows"])
def test_packed_and_padded_batches_give_the_same_loss(
    tiny_model: Path, tokenizer: PreTrainedTokenizerBase, kernel: AttentionKernel, rows: str
) -> None:
    model = _model(tiny_model, kernel)
    tokenized = _tokenized(tokenizer, QUESTIONS)
    width = 4096 if rows == "one row" else _two_rows_width(tokenized)
    pad = tokenizer.pad_token_id
    packed = _packed_batch(tokenized, width, kernel, pad, model.device.type)
    padded = _padded_batch(tokenized, pad, model.device.type)
    assert "attention_mask" not in packed
    assert packed["input_ids"].numel() < padded["input_ids"].numel()
    with torch.no_grad():
        packed_loss = model(**packed, use_cache=False).loss
        padded_loss = model(**padded, use_cache=False).loss
    assert torch.allclose(packed_loss, padded_loss, **_tolerance(kernel))


def _document_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """Which packed example (or pad run) each token belongs to, numbered across the whole batch."""
    starts = (position_ids == 0).flatten().long()
    return (starts.cumsum(0) - 1).view_as(position_ids)


@pytest.mark.parametrize("kernel", KERNELS)
def test_an_example_does_not_attend_to_the_others_packed_with_it(
    tiny_model: Path, tokenizer: PreTrainedTokenizerBase, kernel: AttentionKernel
) -> None:
    model = _model(tiny_model, kernel)
    pad = tokenizer.pad_token_id
    original_rows = _tokenized(tokenizer, QUESTIONS)
    changed_rows = _tokenized(tokenizer, ("What is the capital of Spain?", *QUESTIONS[1:]))  # same length
    width = _two_rows_width(original_rows)
    original = _packed_batch(original_rows, width, kernel, pad, model.device.type)
    changed = _packed_batch(changed_rows, width, kernel, pad, model.device.type)
    assert original["input_ids"].shape == changed["input_ids"].shape
    documents = _document_ids(original["position_ids"])
    differs = original["input_ids"] != changed["input_ids"]
    changed_documents = documents[differs].unique()
    assert changed_documents.numel() == 1  # exactly the first example changed
    untouched = documents != changed_documents[0]
    assert documents[untouched].unique().numel() >= 3  # the other examples, in both rows
    with torch.no_grad():
        before = model(**original, use_cache=False).logits[untouched]
        after = model(**changed, use_cache=False).logits[untouched]
    assert torch.allclose(before, after, **_tolerance(kernel))
