"""One 16-bit LoRA run with a held-out split and merging; each test checks one of its outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.config import Hyperparameters, Quantization, RunSpec
from trainer.results import Progress, TrainResult
from trainer.train import train

HP = Hyperparameters(
    n_epochs=2,
    learning_rate=3e-3,
    batch_size=4,
    gradient_accumulation_steps="auto",
    max_seq_length=128,
    quantization=Quantization.NONE,
    validation_split=0.1,
    eval_every_steps=5,
    merge_adapter=True,
)


@dataclass
class Run:
    result: TrainResult
    progress: list[Progress]
    events: list[str]


@pytest.fixture(scope="module")
def run(tiny_model: Path, sample_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    progress: list[Progress] = []
    events: list[str] = []
    spec = RunSpec(tiny_model, sample_dataset, tmp_path_factory.mktemp("run"), HP, sample_generations=2)
    result = train(spec, on_progress=progress.append, on_event=events.append)
    return Run(result, progress, events)


def test_validation_split_is_evaluated_at_the_interval_and_at_the_end(run: Run) -> None:
    evals = [p for p in run.progress if p.eval_loss is not None]
    assert [p.step for p in evals] == [5, 10, run.result.steps]
    assert all(p.eval_token_accuracy is not None and 0 <= p.eval_token_accuracy <= 1 for p in evals)
    assert run.result.final_eval_loss == evals[-1].eval_loss
    assert "held out 7 of 72 examples for eval" in run.events


def test_auto_decisions_reach_on_event_and_the_result(run: Run) -> None:
    assert run.result.hyperparameters.gradient_accumulation_steps == 1  # 65 examples: no need to accumulate
    assert any(line.startswith("auto: batch_size 4 x gradient_accumulation_steps 1") for line in run.events)
    assert run.result.decisions == run.events


def test_progress_reports_token_accuracy_and_a_falling_eta(run: Run) -> None:
    steps = [p for p in run.progress if p.loss is not None]
    assert all(p.token_accuracy is not None for p in steps)
    etas = [p.eta_seconds for p in steps]
    assert etas[-1] == 0 and all(eta is not None and eta >= 0 for eta in etas)


def test_model_card_describes_base_data_hyperparameters_and_losses(run: Run, tiny_model: Path) -> None:
    card = (run.result.adapter_dir / "README.md").read_text()
    assert f"base_model: {tiny_model}" in card
    assert "training examples: 65" in card and "validation examples: 7" in card
    assert "| batch_size | 4 |" in card and "| quantization | none |" in card
    assert f"final validation loss: {run.result.final_eval_loss:.4f}" in card
    assert "tuneq" in card


def test_merged_model_matches_base_plus_adapter(run: Run, tiny_model: Path) -> None:
    assert run.result.merged_dir is not None
    tokenizer = AutoTokenizer.from_pretrained(run.result.merged_dir)
    ids = tokenizer("What is the capital of Peru?", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(base, str(run.result.adapter_dir)).eval()(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(run.result.merged_dir).eval()(ids).logits
    assert torch.allclose(merged, unmerged, atol=1e-4)


def test_samples_are_greedy_completions_of_held_out_prompts(run: Run) -> None:
    assert len(run.result.samples) == 2
    for sample in run.result.samples:
        assert str(sample["prompt"]).endswith("<|im_start|>assistant\n")
        assert str(sample["reference"]).startswith("The capital of")
        assert isinstance(sample["completion"], str)


def test_qlora_adapter_merges_into_the_16bit_base(tiny_model: Path, sample_dataset: Path, tmp_path: Path) -> None:
    """QLoRA trains on a 4-bit base; the merge reloads the base unquantized and folds the adapter in."""
    hp = Hyperparameters(n_epochs=1, learning_rate=3e-3, batch_size=8, max_seq_length=128, merge_adapter=True)
    result = train(RunSpec(tiny_model, sample_dataset, tmp_path, hp, sample_generations=0))
    assert result.environment.quantization == "nf4" and result.merged_dir is not None
    merged_model = AutoModelForCausalLM.from_pretrained(result.merged_dir)
    assert not any("4bit" in type(module).__name__ for module in merged_model.modules())
    ids = AutoTokenizer.from_pretrained(result.merged_dir)("Capital of Peru?", return_tensors="pt")["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        unmerged = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()(ids).logits
        merged = merged_model.eval()(ids).logits
    assert torch.allclose(merged, unmerged, atol=1e-4)
