"""The chat template used for models that ship without one (documented in docs/datasets.md)."""

# ChatML, as used by Qwen: widely understood and unambiguous about turn ends.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
