"""Training throughput: the common LoRA recipe against tuneq's trainer, same data, same model shape.

    .venv/bin/python bench/train_throughput.py                      # CPU, tiny model (runs anywhere)
    .venv/bin/python bench/train_throughput.py --device cuda --shape qwen3-8b

The common recipe is what most QLoRA tutorials run: the HF Trainer, every example padded to 2048 tokens,
no packing, batch 4, gradient checkpointing, paged 8-bit AdamW (plain AdamW on a CPU, where bitsandbytes'
paged optimizers do not run). tuneq runs ``trainer.train`` with its defaults ("auto" everything but the
epoch count and learning rate, which both arms share). Both train QLoRA (NF4) adapters with the same
LoRA settings on the same generated conversations (median ~130 tokens, a long tail to ~1,400).

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


def run_tuneq(model_dir: Path, data: Path) -> ArmResult:
    from trainer.config import Hyperparameters, RunSpec
    from trainer.results import Progress
    from trainer.train import train

    clock = _Clock()

    def on_progress(progress: Progress) -> None:
        if progress.loss is not None:
            clock.mark(progress.trained_tokens, progress.loss)

    hp = Hyperparameters(n_epochs=EPOCHS, learning_rate=LEARNING_RATE)
    spec = RunSpec(str(model_dir), data, data.parent / "tuneq", hp, checkpoint_every_steps=None, sample_generations=0)
    result = train(spec, on_progress=on_progress, on_event=lambda line: print(line, file=sys.stderr))
    rate = clock.rate()
    return ArmResult(
        "tuneq", rate, result.trained_tokens, result.steps, _peak_memory_gib(), _mfu(model_dir, rate),
        clock.losses[0], clock.losses[-1],
    )  # fmt: skip


def _child(arm: str, model_dir: Path, data: Path) -> ArmResult:
    command = [sys.executable, __file__, "--arm", arm, "--model-dir", str(model_dir), "--data", str(data)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{arm} failed:\n{done.stderr[-4000:]}")
    for line in done.stderr.splitlines():
        if line.startswith(("auto:", "attention:")):
            print(f"  tuneq decided: {line}")
    return ArmResult(**json.loads(done.stdout.strip().splitlines()[-1]))


def _print(results: list[ArmResult]) -> None:
    print(
        f"{'arm':<15} {'tokens/s':>10} {'tokens':>9} {'steps':>6} {'peak GiB':>9} {'MFU':>6} {'loss first->last':>18}"
    )
    for r in results:
        mfu = f"{r.mfu:.1%}" if r.mfu is not None else "-"
        losses = f"{r.first_loss:.3f} -> {r.last_loss:.3f}"
        print(
            f"{r.arm:<15} {r.tokens_per_second:>10.0f} {r.trained_tokens:>9} {r.steps:>6} "
            f"{r.peak_memory_gib:>9.2f} {mfu:>6} {losses:>18}"
        )
    common, tuneq = results
    print(f"\ntuneq / common recipe: {tuneq.tokens_per_second / common.tokens_per_second:.2f}x real tokens/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen3-8b", help="model shape on CUDA")
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arm", choices=["common", "tuneq"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:  # a child: run one arm, print its result as the last line
        run = run_common if args.arm == "common" else run_tuneq
        print(json.dumps(asdict(run(args.model_dir, args.data))))
        return
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="tuneq-bench-") as work:
        model_dir = build_model(Path(work) / "model", args.device, args.shape)
        data = Path(work) / "train.jsonl"
        write_dataset(data, AutoTokenizer.from_pretrained(model_dir), args.examples, args.seed)
        shape = "tiny Qwen3" if args.device == "cpu" else args.shape
        print(f"{args.examples} conversations, {shape}, {args.device}, {EPOCHS} epoch, QLoRA r=16 all-linear\n")
        _print([_child("common", model_dir, data), _child("tuneq", model_dir, data)])


if __name__ == "__main__":
    main()
