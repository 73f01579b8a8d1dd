"""Turn normalised examples into token ids with a loss mask.

The mask is built from character spans of the rendered text, not from
template-specific markers, so it works with any chat template: each assistant
turn's span runs from the end of the prompt that precedes it (rendered with
``add_generation_prompt``) to the end of that turn, end-of-turn token included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from core.dataset_formats import Example, Message
from trainer.errors import InvalidTrainingData


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 = the token is a label, 0 = context only


def _render(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message], add_generation_prompt: bool) -> str:
    rendered = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages],
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    assert isinstance(rendered, str)
    return rendered


def _chat_spans(tokenizer: PreTrainedTokenizerBase, messages: Sequence[Message]) -> tuple[str, list[tuple[int, int]]]:
    full = _render(tokenizer, messages, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for index, message in enumerate(messages):
        if message.role != "assistant" or message.weight == 0:
            continue
        before = _render(tokenizer, messages[:index], add_generation_prompt=True) if index else ""
        through = _render(tokenizer, messages[: index + 1], add_generation_prompt=False)
        if not full.startswith(through) or not through.startswith(before):
            raise InvalidTrainingData(
                "the chat template does not render conversations prefix-consistently, "
                "so assistant turns cannot be located; set train_on_inputs=true or use another template"
            )
        spans.append((len(before), len(through)))
    return full, spans


def _text_and_spans(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[str, list[tuple[int, int]]]:
    eos = tokenizer.eos_token or ""
    if example.messages:
        return _chat_spans(tokenizer, example.messages)
    if example.completion is not None:
        prompt = example.prompt or ""
        text = prompt + example.completion + eos
        return text, [(len(prompt), len(text))]
    text = (example.text or "") + eos
    return text, [(0, len(text))]


def tokenize_example(tokenizer: PreTrainedTokenizerBase, example: Example, train_on_inputs: bool) -> TokenizedExample:
    text, spans = _text_and_spans(tokenizer, example)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids: list[int] = encoded["input_ids"]
    if train_on_inputs:
        return TokenizedExample(input_ids, [1] * len(input_ids))
    masks = [
        int(any(start <= token_start and token_end <= end for start, end in spans) and token_end > token_start)
        for token_start, token_end in encoded["offset_mapping"]
    ]
    return TokenizedExample(input_ids, masks)
