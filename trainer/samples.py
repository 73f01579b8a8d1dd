"""A few greedy generations after training, so a person can see what the model learned."""

from __future__ import annotations

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from core.dataset_formats import Example

MAX_NEW_TOKENS = 64


def prompt_and_reference(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[str, str | None] | None:
    """The text the model is asked to continue, and the answer the data gives; None for plain-text rows."""
    if example.messages:
        last_answer = max(i for i, m in enumerate(example.messages) if m.role == "assistant")
        context = [{"role": m.role, "content": m.content} for m in example.messages[:last_answer]]
        prompt = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
        assert isinstance(prompt, str)
        return prompt, example.messages[last_answer].content
    if example.completion is not None:
        return example.prompt or "", example.completion
    return None


@torch.no_grad()
def generate_samples(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, examples: list[Example], limit: int
) -> list[dict[str, str | None]]:
    """Greedy completions of the first ``limit`` examples that have a prompt."""
    pairs = [pair for example in examples if (pair := prompt_and_reference(tokenizer, example)) is not None]
    model.eval()
    samples: list[dict[str, str | None]] = []
    for prompt, reference in pairs[:limit]:
        encoded = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(model.device)
        output = model.generate(
            **encoded,
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        completion = str(tokenizer.decode(output[0, encoded["input_ids"].shape[1] :], skip_special_tokens=True))
        samples.append({"prompt": prompt, "completion": completion, "reference": reference})
    return samples
