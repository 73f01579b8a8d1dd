"""Padding-free packing is exact: examples packed in one row neither see each other nor change the loss.

The batches come from TRL's own collator, as in training. transformers 5 builds a block-diagonal causal
mask from the reset position ids when no attention mask is given, for the "sdpa" and "eager" kernels
alike, so this holds on CPU without FlashAttention. It does so only without a KV cache: with
``use_cache=True`` the model skips the packed-sequence check and examples leak into each other. TRL's
``SFTTrainer.compute_loss`` sets ``use_cache=False`` on every batch, so the forwards here do the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from core.dataset_formats import Example, Message
from trainer.tokenize import tokenize_example

QUESTIONS = ("What is the capital of France?", "Name the capital city of Kenya.", "Which city is the capital of Peru?")
ANSWERS = ("The capital of France is Paris.", "The capital of Kenya is Nairobi.", "The capital of Peru is Lima.")


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model)


def _model(tiny_model: Path, attention: str) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation=attention).eval()


def _rows(tokenizer: PreTrainedTokenizerBase, questions: tuple[str, ...]) -> list[dict[str, list[int]]]:
    rows = []
    for question, answer in zip(questions, ANSWERS, strict=True):
        example = Example(messages=(Message("user", question), Message("assistant", answer)))
        tokenized = tokenize_example(tokenizer, example, train_on_inputs=False)
        rows.append({"input_ids": tokenized.input_ids, "completion_mask": tokenized.assistant_masks})
    return rows


def _collate(tokenizer: PreTrainedTokenizerBase, rows: list[dict[str, list[int]]], packed: bool) -> dict:
    collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id, padding_free=packed)
    return dict(collator(rows))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_and_padded_batches_give_the_same_loss(
    tiny_model: Path, tokenizer: PreTrainedTokenizerBase, attention: str
) -> None:
    model = _model(tiny_model, attention)
    rows = _rows(tokenizer, QUESTIONS)
    packed, padded = _collate(tokenizer, rows, packed=True), _collate(tokenizer, rows, packed=False)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    with torch.no_grad():
        packed_loss = model(**packed, use_cache=False).loss
        padded_loss = model(**padded, use_cache=False).loss
    assert torch.allclose(packed_loss, padded_loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_an_example_does_not_attend_to_the_one_packed_before_it(
    tiny_model: Path, tokenizer: PreTrainedTokenizerBase, attention: str
) -> None:
    model = _model(tiny_model, attention)
    original = _collate(tokenizer, _rows(tokenizer, QUESTIONS), packed=True)
    changed_first = ("What is the capital of Spain?", *QUESTIONS[1:])  # same token count, different tokens
    changed = _collate(tokenizer, _rows(tokenizer, changed_first), packed=True)
    assert original["input_ids"].shape == changed["input_ids"].shape
    first_length = int((original["position_ids"][0] == 0).nonzero()[1])
    assert not torch.equal(original["input_ids"][:, :first_length], changed["input_ids"][:, :first_length])
    with torch.no_grad():
        before = model(**original, use_cache=False).logits[:, first_length:]
        after = model(**changed, use_cache=False).logits[:, first_length:]
    assert torch.allclose(before, after, atol=1e-5)
