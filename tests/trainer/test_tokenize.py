"""Loss masking, checked token by token on a known conversation."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from core.dataset_formats import Example, Message
from trainer.tokenize import tokenize_example


@pytest.fixture(scope="module")
def tokenizer(tiny_model: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model)


CONVERSATION = (
    Message("system", "You answer geography questions in one sentence."),
    Message("user", "What is the capital of France?"),
    Message("assistant", "The capital of France is Paris."),
)


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_only_assistant_tokens_and_end_of_turn_are_labels(tokenizer: PreTrainedTokenizerBase) -> None:
    out = tokenize_example(tokenizer, Example(messages=CONVERSATION), train_on_inputs=False)
    prompt = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in CONVERSATION[:2]], tokenize=False, add_generation_prompt=True
    )
    answer = _ids(tokenizer, "The capital of France is Paris.<|im_end|>\n")
    prompt_ids = _ids(tokenizer, prompt)
    assert out.input_ids == prompt_ids + answer
    assert out.assistant_masks == [0] * len(prompt_ids) + [1] * len(answer)
    labelled = [t for t, m in zip(out.input_ids, out.assistant_masks, strict=True) if m]
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in labelled


def test_weight_zero_turns_are_not_learned(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = (
        Message("user", "Capital of Peru?"),
        Message("assistant", "Wrong answer.", weight=0),
        Message("user", "Try again."),
        Message("assistant", "Lima."),
    )
    out = tokenize_example(tokenizer, Example(messages=messages), train_on_inputs=False)
    learned = tokenizer.decode([t for t, m in zip(out.input_ids, out.assistant_masks, strict=True) if m])
    assert learned == "Lima.<|im_end|>\n"


def test_train_on_inputs_labels_everything(tokenizer: PreTrainedTokenizerBase) -> None:
    out = tokenize_example(tokenizer, Example(messages=CONVERSATION), train_on_inputs=True)
    assert set(out.assistant_masks) == {1}


def test_prompt_completion_learns_only_the_completion(tokenizer: PreTrainedTokenizerBase) -> None:
    out = tokenize_example(tokenizer, Example(prompt="Capital of Chile:", completion=" Santiago"), False)
    learned = tokenizer.decode([t for t, m in zip(out.input_ids, out.assistant_masks, strict=True) if m])
    assert learned == " Santiago<|im_end|>"


def test_labels_the_trainer_sees_are_minus_100_on_the_prompt_and_ids_on_the_answer(
    tiny_model: Path, tokenizer: PreTrainedTokenizerBase, tmp_path: Path
) -> None:
    """Through TRL's own dataset preparation: what the loss is actually computed on."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_config import SFTConfig
    from trl.trainer.sft_trainer import SFTTrainer

    out = tokenize_example(tokenizer, Example(messages=CONVERSATION), train_on_inputs=False)
    dataset = Dataset.from_dict({"input_ids": [out.input_ids], "assistant_masks": [out.assistant_masks]})
    args = SFTConfig(output_dir=str(tmp_path), packing=False, report_to=[], use_cpu=True, max_length=512)
    sft = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    labels = sft.train_dataset[0]["labels"]
    answer = _ids(tokenizer, "The capital of France is Paris.<|im_end|>\n")
    prompt_length = len(out.input_ids) - len(answer)
    assert labels == [-100] * prompt_length + answer
    assert labels[-2] == tokenizer.convert_tokens_to_ids("<|im_end|>")
