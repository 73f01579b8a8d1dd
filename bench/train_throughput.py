"""Training throughput: the common LoRA recipe against tuneq's trainer, same data, same model shape.

    .venv/bin/python bench/train_throughput.py                      # CPU, tiny model (runs anywhere)
    .venv/bin/python bench/train_throughput.py --device cuda --shape qwen3-8b
    .venv/bin/python bench/train_throughput.py --device cuda --shape qwen3-0.6b --batch-size 4 \
        --max-seq-length 2048 --variants default,no-liger,ckpt-every-2,compile   # kernel options, one row each

The common recipe is what most QLoRA tutorials run: the HF Trainer, every example padded to 2048 tokens,
no packing, batch 4, gradient checkpointing, paged 8-bit AdamW (plain AdamW on a CPU, where bitsandbytes'
paged optimizers do not run). tuneq runs ``trainer.train`` with its defaults ("auto" everything but the
epoch count and learning rate, which both arms share). Both train QLoRA (NF4) adapters with the same
LoRA settings on the same generated conversations (median ~130 tokens, a long tail to ~1,400).

``--variants`` runs tuneq once per named kernel plan (``VARIANTS``: ``trainer.kernels.KernelOptions``
overrides; "default" is tuneq's own "auto" plan) and prints each against "default" and the common recipe.
Each arm runs in its own child process, so peak memory is its own. Tokens/s counts real (non-padding)
tokens from the end of the first optimizer step to the end of the last, so model loading, data
preparation and the first step's warm-up are left out of both. MFU (GPU only) is 6 x parameters x
tokens/s over the GPU's dense bf16 peak, the usual convention (it ignores attention and recomputation).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COMMON_MAX_LENGTH = 2048
COMMON_BATCH = 4
EPOCHS = 1
LEARNING_RATE = 2e-4
MEDIAN_TOKENS, LONGEST_TOKENS = 130, 1400
WORDS = "the capital of a country is its seat of government and often its largest city by population"
# Dense bf16 peak of the GPUs we expect, for MFU; unknown GPUs print no MFU.
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}
# Qwen3 shapes (public configs), random-init: throughput does not depend on the weights' values.
SHAPES: dict[str, dict[str, int]] = {
    "qwen3-0.6b": {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16},
    "qwen3-8b": {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "num_attention_heads": 32},
}


# Kernel plans to compare (trainer.kernels.KernelOptions fields); "default" is tuneq's automatic choice.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "liger": {"liger": "on"},
    "no-liger": {"liger": "off"},
    "ckpt-every-2": {"activation_checkpointing": 2},
    "ckpt-every-4": {"activation_checkpointing": 4},
    "no-ckpt": {"activation_checkpointing": "off"},
    "ckpt-offload": {"checkpoint_offload": "on"},
    "compile": {"compile": "on"},
    "no-workers": {"dataloader_workers": 0},
}


@dataclass
class ArmResult:
    arm: str
    tokens_per_second: float
    trained_tokens: int
    steps: int
    peak_memory_gib: float
    mfu: float | None
    first_loss: float
    last_loss: float
    error: str | None = None  # why the arm did not finish (e.g. out of GPU memory); its numbers are then NaN


def write_dataset(path: Path, tokenizer: Any, n_examples: int, seed: int) -> None:
    """Conversations whose token counts follow a log-normal mix: median ~130, tail clipped at ~1,400."""
    rng = random.Random(seed)
    words = WORDS.split(" ")
    per_word = len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) / len(words)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(n_examples):
            target = min(LONGEST_TOKENS, max(24, int(rng.lognormvariate(math.log(MEDIAN_TOKENS), 0.8))))
            n_words = max(4, int(target / per_word))
            question = " ".join(rng.choices(words, k=max(3, n_words // 4)))
            answer = " ".join(rng.choices(words, k=max(1, n_words - n_words // 4)))
            row = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
            handle.write(json.dumps(row) + "\n")


def build_model(directory: Path, device: str, shape: str) -> Path:
    """The tiny model on a CPU; on CUDA a random-init Qwen3 of ``shape`` with the tiny tokenizer, built offline."""
    from trainer.tiny_model import build_tokenizer, make_tiny_model

    if device == "cpu":
        return make_tiny_model(directory)
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    dims = SHAPES[shape]
    config = Qwen3Config(
        vocab_size=151_936,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40_960,
        tie_word_embeddings=shape == "qwen3-0.6b",
        **dims,
    )
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(directory)
    build_tokenizer().save_pretrained(directory)
    return directory


class _Clock:
    """Real tokens and time at each optimizer step end, and the losses logged."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []
        self.losses: list[float] = []

    def mark(self, tokens: int, loss: float | None) -> None:
        self.marks.append((time.monotonic(), tokens))
        if loss is not None:
            self.losses.append(loss)

    def rate(self) -> float:
        (t0, n0), (t1, n1) = self.marks[0], self.marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


def _peak_memory_gib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _mfu(model_dir: Path, tokens_per_second: float) -> float | None:
    import torch
    from transformers import AutoConfig

    if not torch.cuda.is_available():
        return None
    peak = next((flops for name, flops in PEAK_FLOPS.items() if name in torch.cuda.get_device_name()), None)
    if peak is None:
        return None
    config = AutoConfig.from_pretrained(model_dir)
    hidden, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    q_heads, kv_heads, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    per_layer = hidden * head_dim * (2 * q_heads + 2 * kv_heads) + 3 * hidden * inter
    params = layers * per_layer + config.vocab_size * hidden  # the LM head; the embedding lookup is free
    return 6 * params * tokens_per_second / peak


def run_common(model_dir: Path, data: Path) -> ArmResult:
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        BitsAndBytesConfig,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from core.dataset_formats import read_examples
    from trainer.tokenize import tokenize_example

    on_cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if on_cuda else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for example in read_examples(data)[1]:
        tokenized = tokenize_example(tokenizer, example, train_on_inputs=False)
        ids = tokenized.input_ids[:COMMON_MAX_LENGTH]
        labels = [t if m else -100 for t, m in zip(ids, tokenized.assistant_masks, strict=False)]
        pad = COMMON_MAX_LENGTH - len(ids)
        rows["input_ids"].append(ids + [tokenizer.pad_token_id] * pad)
        rows["attention_mask"].append([1] * len(ids) + [0] * pad)
        rows["labels"].append(labels + [-100] * pad)
    quantization = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=dtype, quantization_config=quantization, device_map={"": 0} if on_cuda else None
    )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    clock = _Clock()

    class Mark(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any) -> None:
            if logs and "loss" in logs:
                clock.mark(int(state.num_input_tokens_seen), float(logs["loss"]))

    args = TrainingArguments(
        output_dir=str(data.parent / "common"),
        per_device_train_batch_size=COMMON_BATCH,
        num_train_epochs=EPOCHS,
        learning_rate=LEARNING_RATE,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        gradient_checkpointing=True,
        optim="paged_adamw_8bit" if on_cuda else "adamw_torch",
        bf16=on_cuda,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        use_cpu=not on_cuda,
        seed=42,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), callbacks=[Mark()])
    trainer.train()
    rate = clock.rate()
    return ArmResult(
        "common recipe",
        rate,
        clock.marks[-1][1],
        len(clock.marks),
        _peak_memory_gib(),
        _mfu(model_dir, rate),
        clock.losses[0],
        clock.losses[-1],
    )


def run_tuneq(model_dir: Path, data: Path, variant: str, batch: dict[str, Any]) -> ArmResult:
    from pydantic import TypeAdapter

    from trainer.config import Hyperparameters, RunSpec
    from trainer.kernels import KernelOptions
    from trainer.results import Progress
    from trainer.train import train

    clock = _Clock()

    def on_progress(progress: Progress) -> None:
        if progress.loss is not None:
            clock.mark(progress.trained_tokens, progress.loss)

    hp = Hyperparameters(n_epochs=EPOCHS, learning_rate=LEARNING_RATE, **batch)
    kernels = TypeAdapter(KernelOptions).validate_python(VARIANTS[variant])
    output = data.parent / f"tuneq-{variant}"
    spec = RunSpec(str(model_dir), data, output, hp, checkpoint_every_steps=None, sample_generations=0, kernels=kernels)
    result = train(spec, on_progress=on_progress, on_event=lambda line: print(line, file=sys.stderr))
    rate = clock.rate()
    return ArmResult(
        f"tuneq {variant}", rate, result.trained_tokens, result.steps, _peak_memory_gib(), _mfu(model_dir, rate),
        clock.losses[0], clock.losses[-1],
    )  # fmt: skip


def _failure(arm: str, stderr: str) -> ArmResult:
    oom = "out of GPU memory" in stderr or "OutOfMemoryError" in stderr
    reason = "out of GPU memory" if oom else (stderr.strip().splitlines() or ["failed"])[-1][-120:]
    print(f"  {arm} failed: {reason}" + ("" if oom else f"\n{stderr[-3000:]}"))
    nan = float("nan")
    return ArmResult(arm, nan, 0, 0, nan, None, nan, nan, error=reason)


def _child(arm: str, model_dir: Path, data: Path, extra: list[str], timeout: float | None) -> ArmResult:
    command = [sys.executable, __file__, "--arm", arm, "--model-dir", str(model_dir), "--data", str(data), *extra]
    label = "common recipe" if arm == "common" else f"tuneq {extra[extra.index('--variant') + 1]}"
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _failure(label, f"timed out after {timeout:.0f} s")
    if done.returncode != 0:
        return _failure(label, done.stderr)
    for line in done.stderr.splitlines():
        if line.startswith(("auto:", "attention:", "kernels:")):
            print(f"  {label} decided: {line}")
    return ArmResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def _ratio(value: float, baseline: ArmResult | None) -> str:
    if baseline is None or baseline.error or not baseline.tokens_per_second > 0 or value != value:
        return "-"
    return f"{value / baseline.tokens_per_second:.2f}x"


def _print(results: list[ArmResult]) -> None:
    common = next((r for r in results if r.arm == "common recipe"), None)
    default = next((r for r in results if r.arm == "tuneq default"), None)
    print(
        f"{'arm':<20} {'tokens/s':>9} {'tokens':>8} {'steps':>5} {'peak GiB':>8} {'MFU':>6} "
        f"{'loss first->last':>17} {'x default':>9} {'x common':>8}"
    )
    for r in results:
        if r.error:
            print(f"{r.arm:<20} {'failed: ' + r.error}")
            continue
        mfu = f"{r.mfu:.1%}" if r.mfu is not None else "-"
        losses = f"{r.first_loss:.3f} -> {r.last_loss:.3f}"
        print(
            f"{r.arm:<20} {r.tokens_per_second:>9.0f} {r.trained_tokens:>8} {r.steps:>5} {r.peak_memory_gib:>8.2f} "
            f"{mfu:>6} {losses:>17} {_ratio(r.tokens_per_second, default):>9} {_ratio(r.tokens_per_second, common):>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-8b", help="model shape on CUDA")
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--common-examples", type=int, help="train the common recipe on only the first N examples")
    parser.add_argument("--no-common", action="store_true", help="skip the common recipe")
    parser.add_argument("--variants", default="default", help=f"tuneq kernel plans: {','.join(VARIANTS)}")
    parser.add_argument("--batch-size", type=int, help="tuneq's micro-batch in packed rows (default: auto)")
    parser.add_argument("--max-seq-length", type=int, help="tuneq's packed row length (default: tuneq's)")
    parser.add_argument("--accumulation", type=int, help="tuneq's gradient_accumulation_steps (default: auto)")
    parser.add_argument("--arm-timeout", type=float, help="seconds one arm may take; a slower one is a failed row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arm", choices=["common", "tuneq"], help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="default", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch = {
        name: value
        for name, value in (
            ("batch_size", args.batch_size),
            ("max_seq_length", args.max_seq_length),
            ("gradient_accumulation_steps", args.accumulation),
        )
        if value is not None
    }
    if args.arm:  # a child: run one arm, print its result as the last line
        if args.arm == "common":
            result = run_common(args.model_dir, args.data)
        else:
            result = run_tuneq(args.model_dir, args.data, args.variant, batch)
        print(json.dumps(asdict(result)))
        return
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    batch_flags = [
        flag
        for flag, value in (
            ("--batch-size", args.batch_size),
            ("--max-seq-length", args.max_seq_length),
            ("--accumulation", args.accumulation),
        )
        if value is not None
        for flag in (flag, str(value))
    ]
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="tuneq-bench-") as work:
        model_dir = build_model(Path(work) / "model", args.device, args.shape)
        data = Path(work) / "train.jsonl"
        write_dataset(data, AutoTokenizer.from_pretrained(model_dir), args.examples, args.seed)
        shape = "tiny Qwen3" if args.device == "cpu" else args.shape
        print(f"{args.examples} conversations, {shape}, {args.device}, {EPOCHS} epoch, QLoRA r=16 all-linear")
        print(f"tuneq: {batch or 'auto batching'}\n")
        results = []
        if not args.no_common:
            common_data = data
            if args.common_examples is not None:
                common_data = Path(work) / "common.jsonl"
                lines = data.read_text(encoding="utf-8").splitlines(keepends=True)[: args.common_examples]
                common_data.write_text("".join(lines), encoding="utf-8")
            results.append(_child("common", model_dir, common_data, [], args.arm_timeout))
        for variant in variants:
            results.append(_child("tuneq", model_dir, data, ["--variant", variant, *batch_flags], args.arm_timeout))
        print()
        _print(results)


if __name__ == "__main__":
    main()
