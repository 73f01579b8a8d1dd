"""The kernel plan: what "auto" picks per device, what a run may override, and that the fused paths train the
same model as the plain ones.

The loss tests compare TRL's chunked LM head, the loss every run trains on, with a plain cross-entropy over
the full logits, on packed micro-batches as the trainer builds them (-100 labels, position ids restarting at
each example): in fp32 on the CPU (its torch tiles), and in bf16 on CUDA (its Triton kernel, which scores only
the labelled positions). Liger's kernels are Triton-only, so their parity test needs CUDA and liger-kernel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from pydantic import TypeAdapter, ValidationError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from trl.trainer.utils import add_fused_lm_head

from core.dataset_formats import read_examples
from trainer.auto_hyperparameters import activation_bytes_per_token
from trainer.batches import IGNORE_INDEX, PackedRowsCollator, prepare_rows
from trainer.config import Hyperparameters, RunSpec
from trainer.kernels import CUDA_DATALOADER_WORKERS, KernelOptions, Switch, choose_kernels, liger_model_types
from trainer.train import train

VALIDATE = TypeAdapter(KernelOptions).validate_python
LIGER_TYPES = frozenset({"qwen3", "llama"})
AUTO = KernelOptions()


def test_auto_on_a_cpu_uses_no_gpu_only_option() -> None:
    plan = choose_kernels("cpu", AUTO, "qwen3", LIGER_TYPES)
    assert (plan.liger, plan.checkpoint_every, plan.checkpoint_offload, plan.compile) == (False, 0, False, False)
    assert plan.dataloader_workers == 0
    assert plan.decision == (
        "kernels: Liger layer kernels off (their Triton kernels need CUDA; this run is on cpu); "
        "loss from TRL's chunked LM head (no full logits); no activation checkpointing (cpu: activations fit); "
        "no torch.compile (not measured faster with 4-bit layers and packed batches); "
        "batches collated in the training loop (cpu: its cores train)"
    )


def test_auto_on_cuda_uses_liger_checkpointing_and_dataloader_workers() -> None:
    plan = choose_kernels("cuda", AUTO, "qwen3", LIGER_TYPES)
    assert (plan.liger, plan.checkpoint_every, plan.checkpoint_offload, plan.compile) == (True, 1, False, False)
    assert plan.dataloader_workers == CUDA_DATALOADER_WORKERS
    assert "Liger RMSNorm, SwiGLU and RoPE kernels (liger-kernel is installed)" in plan.decision
    assert "activation checkpointing every layer" in plan.decision


@pytest.mark.parametrize(
    ("device", "model_type", "installed", "reason"),
    [
        ("cpu", "qwen3", LIGER_TYPES, "their Triton kernels need CUDA; this run is on cpu"),
        ("cuda", "qwen3", frozenset(), "liger-kernel is not installed"),
        ("cuda", "gpt_neo", LIGER_TYPES, "liger-kernel has none for model type 'gpt_neo'"),
    ],
)
def test_liger_asked_for_where_it_cannot_run_falls_back_and_says_why(
    device: str, model_type: str, installed: frozenset[str], reason: str
) -> None:
    for requested, prefix in ((Switch.AUTO, ""), (Switch.ON, "requested, but ")):
        plan = choose_kernels(device, KernelOptions(liger=requested), model_type, installed)
        assert not plan.liger
        assert f"Liger layer kernels off ({prefix}{reason})" in plan.decision


def test_each_option_can_be_overridden() -> None:
    asked = KernelOptions(Switch.OFF, 3, checkpoint_offload=Switch.ON, compile=Switch.ON, dataloader_workers=0)
    plan = choose_kernels("cuda", asked, "qwen3", LIGER_TYPES)
    assert (plan.liger, plan.checkpoint_every, plan.checkpoint_offload, plan.compile) == (False, 3, True, True)
    assert plan.dataloader_workers == 0
    assert "activation checkpointing every 3 layers, inputs offloaded to host memory (requested)" in plan.decision
    no_checkpoints = KernelOptions(activation_checkpointing="off", checkpoint_offload=Switch.ON)
    off = choose_kernels("cuda", no_checkpoints, "qwen3", LIGER_TYPES)
    assert (off.checkpoint_every, off.checkpoint_offload) == (0, False)
    assert "offload asked for, but there is nothing to offload" in off.decision


def test_options_are_validated_and_read_from_json() -> None:
    options = TypeAdapter(KernelOptions).validate_json('{"liger": "off", "activation_checkpointing": 2}')
    assert (options.liger, options.activation_checkpointing, options.compile) == (Switch.OFF, 2, Switch.AUTO)
    assert VALIDATE({"activation_checkpointing": "off", "dataloader_workers": 4}).dataloader_workers == 4
    for bad in ({"liger": "sometimes"}, {"activation_checkpointing": 0}, {"dataloader_workers": -1}, {"fused": "on"}):
        with pytest.raises(ValidationError):
            VALIDATE(bad)


def test_activation_estimate_follows_the_checkpointing_choice() -> None:
    shape = {"hidden": 4096, "layers": 36, "intermediate": 12288}  # Qwen3-8B
    every_layer = activation_bytes_per_token(**shape)
    assert every_layer == activation_bytes_per_token(**shape, checkpoint_every=1)
    assert every_layer == 36 * 4096 * 2 + 2 * (6 * 4096 + 3 * 12288) * 2  # what the API's estimates used so far
    every_second = activation_bytes_per_token(**shape, checkpoint_every=2)
    none = activation_bytes_per_token(**shape, checkpoint_every=0)
    offloaded = activation_bytes_per_token(**shape, offload=True)
    assert offloaded < every_layer < every_second < none


def test_liger_is_absent_here_and_the_product_does_not_need_it() -> None:
    if importlib.util.find_spec("liger_kernel") is not None:
        pytest.skip("liger-kernel is installed here")
    assert liger_model_types() == frozenset()


def test_a_cpu_run_asking_for_liger_trains_without_it_and_says_so(
    tiny_model: Path, sample_dataset: Path, tmp_path: Path
) -> None:
    events: list[str] = []
    hp = Hyperparameters(n_epochs=1, learning_rate=3e-3, batch_size=4, max_seq_length=128)
    spec = RunSpec(
        str(tiny_model), sample_dataset, tmp_path, hp, sample_generations=0, kernels=KernelOptions(liger=Switch.ON)
    )
    result = train(spec, on_event=events.append)
    assert result.steps > 0 and result.final_loss is not None
    [decision] = [line for line in events if line.startswith("kernels: ")]
    assert "Liger layer kernels off (requested, but their Triton kernels need CUDA; this run is on cpu)" in decision
    assert decision in result.decisions


# --- the fused loss against the plain one ---------------------------------------------------------------


def _packed_batch(tiny_model: Path, sample_dataset: Path, device: str) -> dict[str, torch.Tensor]:
    """Two packed rows of 256 tokens, as the trainer builds them for sdpa: -100 on prompts, reset positions."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    from trainer.tokenize import tokenize_example

    examples = read_examples(sample_dataset)[1][:10]
    tokenized = [tokenize_example(tokenizer, example, train_on_inputs=False) for example in examples]
    rows = prepare_rows(
        Dataset.from_dict(
            {"input_ids": [t.input_ids for t in tokenized], "assistant_masks": [t.assistant_masks for t in tokenized]}
        ),
        256,
        packing=True,
    )
    batch = PackedRowsCollator(tokenizer.pad_token_id)(list(rows)[:2])
    assert (batch["labels"] == IGNORE_INDEX).any() and (batch["position_ids"] == 0).sum() > 2
    return {key: value.to(device) for key, value in batch.items()}


def _plain_loss(model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy over the full ``tokens x vocabulary`` logits, next-token shifted, -100 ignored."""
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    vocab = logits.size(-1)
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab).float(), batch["labels"][:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )


def _loss_and_gradient(model: PreTrainedModel, loss: torch.Tensor) -> tuple[float, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    gradient = model.model.layers[0].mlp.down_proj.weight.grad
    assert gradient is not None
    return loss.item(), gradient.detach().float().clone()


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)],
)
def test_trls_chunked_lm_head_gives_the_plain_loss_and_gradients(
    tiny_model: Path, sample_dataset: Path, device: str
) -> None:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=dtype).to(device)
    add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))  # as SFTTrainer does
    batch = _packed_batch(tiny_model, sample_dataset, device)
    plain, plain_gradient = _loss_and_gradient(model, _plain_loss(model, batch))
    fused_out: Any = model(**batch, fused_lm_head=True, use_cache=False)
    fused, fused_gradient = _loss_and_gradient(model, fused_out.loss)
    tolerance = {"rtol": 2e-2, "atol": 2e-2} if device == "cuda" else {"rtol": 1e-5, "atol": 1e-6}
    assert fused == pytest.approx(plain, rel=tolerance["rtol"])
    assert torch.allclose(fused_gradient, plain_gradient, **tolerance)
    assert int(fused_out.label_mask.sum()) == int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


@pytest.mark.gpu
def test_liger_layer_kernels_give_the_same_loss_and_gradients(tiny_model: Path, sample_dataset: Path) -> None:
    pytest.importorskip("liger_kernel")
    from trainer.kernels import apply_liger_layer_kernels

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16).to("cuda")
    add_fused_lm_head(model, outputs=("log_probs",))
    batch = _packed_batch(tiny_model, sample_dataset, "cuda")
    before, before_gradient = _loss_and_gradient(model, model(**batch, fused_lm_head=True, use_cache=False).loss)
    apply_liger_layer_kernels(model)
    assert model.model.layers[0].mlp.forward.__func__.__qualname__.startswith("LigerSwiGLUMLP")
    after, after_gradient = _loss_and_gradient(model, model(**batch, fused_lm_head=True, use_cache=False).loss)
    assert after == pytest.approx(before, rel=2e-2)
    assert torch.allclose(after_gradient, before_gradient, rtol=5e-2, atol=5e-2)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "options",
    [
        KernelOptions(),
        KernelOptions(activation_checkpointing=2, checkpoint_offload=Switch.ON, dataloader_workers=0),
    ],
    ids=["auto", "every-2nd-layer-offloaded"],
)
def test_qlora_on_cuda_trains_with_each_checkpointing_plan(
    tiny_model: Path, sample_dataset: Path, tmp_path: Path, options: KernelOptions
) -> None:
    events: list[str] = []
    hp = Hyperparameters(n_epochs=2, learning_rate=3e-3, batch_size=4, max_seq_length=128)
    spec = RunSpec(str(tiny_model), sample_dataset, tmp_path, hp, sample_generations=0, kernels=options)
    result = train(spec, on_event=events.append)
    assert result.environment.device == "cuda" and result.steps > 0
    assert result.final_loss is not None and result.final_loss == result.final_loss  # not NaN
    [decision] = [line for line in events if line.startswith("kernels: ")]
    assert ("Liger RMSNorm" in decision) == (importlib.util.find_spec("liger_kernel") is not None)
