"""One QLoRA/LoRA fine-tune, top to bottom: load, tokenize, train, save."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import torch
from datasets import Dataset
from peft import LoraConfig, PeftModel, prepare_model_for_kbit_training
from transformers import PreTrainedTokenizerBase, set_seed
from transformers.trainer_callback import PrinterCallback
from trl.trainer.sft_config import SFTConfig
from trl.trainer.sft_trainer import SFTTrainer

from core.dataset_formats import DatasetError, read_examples
from trainer.config import Hyperparameters, Quantization, RunSpec
from trainer.errors import InvalidTrainingData, OutOfMemory, TrainingStopped
from trainer.model_loading import load_model, load_tokenizer
from trainer.progress import ProgressCallback, ReportingCallback, StopCheck
from trainer.results import RunEnvironment, TrainResult
from trainer.tokenize import tokenize_example

log = logging.getLogger(__name__)

OOM_HINT = "lower batch_size, max_seq_length or lora_r"


def load_tokenized(path: Path, tokenizer: PreTrainedTokenizerBase, hp: Hyperparameters) -> Dataset:
    try:
        _, examples, _ = read_examples(path)
    except DatasetError as exc:
        raise InvalidTrainingData(f"{path.name}: {exc}") from exc
    rows = [tokenize_example(tokenizer, example, hp.train_on_inputs) for example in examples]
    return Dataset.from_dict(
        {"input_ids": [r.input_ids for r in rows], "assistant_masks": [r.assistant_masks for r in rows]}
    )


def build_sft_config(spec: RunSpec, environment: RunEnvironment, has_eval: bool) -> SFTConfig:
    hp = spec.hyperparameters
    on_cuda = environment.device == "cuda"
    return SFTConfig(
        output_dir=str(spec.output_dir / "trainer"),
        num_train_epochs=hp.n_epochs,
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.batch_size,
        learning_rate=hp.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=hp.warmup_ratio,  # a float below 1 is read as a ratio of total steps
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        seed=hp.seed,
        data_seed=hp.seed,
        max_length=hp.max_seq_length,
        packing=hp.packing,
        padding_free=hp.packing,
        logging_steps=spec.logging_steps,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="no",
        report_to=[],
        include_num_input_tokens_seen="non_padding",
        bf16=environment.dtype == "bfloat16",
        fp16=environment.dtype == "float16",
        # paged 8-bit AdamW keeps optimizer state small on GPU; bitsandbytes' paged optimizers need CUDA.
        optim="paged_adamw_8bit" if on_cuda else "adamw_torch",
        gradient_checkpointing=on_cuda,
        dataloader_pin_memory=on_cuda,
        disable_tqdm=True,
        use_cpu=not on_cuda,
    )


def train(
    spec: RunSpec, on_progress: ProgressCallback | None = None, should_stop: StopCheck | None = None
) -> TrainResult:
    """Fine-tune ``spec.base_model`` on ``spec.train_file`` and save the adapter."""
    hp = spec.hyperparameters
    set_seed(hp.seed)
    tokenizer = load_tokenizer(spec.base_model, spec.trust_remote_code)
    train_dataset = load_tokenized(spec.train_file, tokenizer, hp)
    eval_dataset = load_tokenized(spec.validation_file, tokenizer, hp) if spec.validation_file else None
    model, environment = load_model(spec.base_model, hp.quantization, spec.trust_remote_code)
    if hp.quantization is Quantization.NF4:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=environment.device == "cuda")
    lora = LoraConfig(
        r=hp.lora_r,
        lora_alpha=hp.lora_alpha,
        lora_dropout=hp.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    reporter = ReportingCallback(on_progress, should_stop)
    trainer = SFTTrainer(
        model=model,
        args=build_sft_config(spec, environment, eval_dataset is not None),
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[reporter],
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to the caller, not to stdout
    try:
        trainer.train()
    except torch.OutOfMemoryError as exc:
        raise OutOfMemory(f"out of GPU memory while training; {OOM_HINT}") from exc
    if reporter.stopped:
        raise TrainingStopped("training was stopped before it finished")
    adapter_dir = spec.output_dir / "adapter"
    cast(PeftModel, trainer.model).save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(adapter_dir)
    return TrainResult(
        adapter_dir=adapter_dir,
        steps=trainer.state.global_step,
        trained_tokens=int(trainer.state.num_input_tokens_seen),
        final_loss=reporter.last_loss,
        environment=environment,
    )
